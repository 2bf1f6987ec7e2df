"""Tool calls for models without native tool tokens: the JSON shape, its schema, and parsing.

A tool call is written by the model as ``{"name": "<function>", "arguments": {...}}``. When the
request forces a tool (``tool_choice`` = a function, or ``"required"``) the grammar admits only that
shape with the function's own parameter schema, so arguments always validate.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import jsonschema

from slmnode.errors import RequestError


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it


def function_defs(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type", "function") != "function" or not isinstance(fn, dict) or not fn.get("name"):
            raise RequestError(f"tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}", param="tools")
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        try:
            jsonschema.validators.validator_for(params).check_schema(params)
        except jsonschema.SchemaError as exc:
            raise RequestError(f"tools[{i}].function.parameters is not a valid JSON schema: {exc.message}", param="tools") from exc
        out.append({"name": fn["name"], "description": fn.get("description", ""), "parameters": params})
    return out


def _call_schema(fn: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": fn["name"]}, "arguments": fn["parameters"]},
        "required": ["name", "arguments"],
    }


def forced_tools(fns: list[dict[str, Any]], tool_choice: Any) -> list[dict[str, Any]] | None:
    """The functions the output must call, or None when the model may answer in text."""
    if not fns or tool_choice in (None, "auto", "none"):
        return None
    if tool_choice == "required":
        return fns
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        chosen = [f for f in fns if f["name"] == name]
        if not chosen:
            raise RequestError(f"tool_choice names function '{name}', which is not in tools", param="tool_choice")
        return chosen
    raise RequestError("tool_choice must be 'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}", param="tool_choice")


def call_schema(fns: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON schema that admits exactly one call of one of ``fns``."""
    if len(fns) == 1:
        return _call_schema(fns[0])
    return {"anyOf": [_call_schema(f) for f in fns]}


def tool_prompt(fns: list[dict[str, Any]]) -> str:
    lines = [
        "You can call the following tools. To call one, reply with only a JSON object "
        '{"name": <tool name>, "arguments": <object matching its parameters>}.',
        "Tools:",
    ]
    lines += [json.dumps(f, ensure_ascii=False) for f in fns]
    return "\n".join(lines)


def parse_tool_call(text: str, fns: list[dict[str, Any]]) -> ToolCall | None:
    """A :class:`ToolCall` if ``text`` is one valid call of a known function, else None."""
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    fn = next((f for f in fns if f["name"] == obj["name"]), None)
    args = obj.get("arguments", obj.get("parameters", {}))
    if fn is None or not isinstance(args, dict):
        return None
    try:
        jsonschema.validate(args, fn["parameters"])
    except jsonschema.ValidationError:
        return None
    return ToolCall(id=f"call_{secrets.token_hex(12)}", name=fn["name"], arguments=json.dumps(args, ensure_ascii=False))
