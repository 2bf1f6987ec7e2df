"""An agent's chat call in each wire format the node serves: OpenAI chat completions, Anthropic Messages,
OpenAI Responses.

The agent runner keeps its conversation as chat completions messages; :func:`request` turns one call
(``messages`` plus ``tools``, ``tool_choice``, ``response_format``, ``temperature``, ``seed``,
``max_tokens``) into the chosen protocol's path and body, and :func:`answer` turns the protocol's answer
back into ``(chat completions message, prompt tokens, completion tokens, timings)``, so the runner validates
every protocol's tool calls and final answer the same way.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from slmnode.errors import BenchError

Json = dict[str, Any]
WireProtocol = Literal["openai", "anthropic", "responses"]
PROTOCOLS: tuple[str, ...] = ("openai", "anthropic", "responses")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _input(arguments: Any) -> Json:
    if isinstance(arguments, dict):
        return arguments
    try:
        obj = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _anthropic(messages: list[Json], extra: Json) -> Json:
    system = "\n\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    turns: list[Json] = []

    def add(role: str, blocks: list[Json]) -> None:
        if turns and turns[-1]["role"] == role:  # tool results and the next user text share one user turn
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})

    for m in messages:
        role = m.get("role")
        if role == "user":
            add("user", [{"type": "text", "text": _text(m.get("content"))}])
        elif role == "assistant":
            blocks: list[Json] = [{"type": "text", "text": text} for text in [_text(m.get("content"))] if text]
            blocks += [{"type": "tool_use", "id": c["id"], "name": c["function"]["name"],
                        "input": _input(c["function"].get("arguments"))} for c in m.get("tool_calls") or []]
            add("assistant", blocks)
        elif role == "tool":
            add("user", [{"type": "tool_result", "tool_use_id": m.get("tool_call_id"),
                          "content": _text(m.get("content"))}])
    body: Json = {"messages": turns, "max_tokens": extra.get("max_tokens") or 1024}
    if system:
        body["system"] = system
    if extra.get("temperature") is not None:
        body["temperature"] = min(1.0, float(extra["temperature"]))
    if tools := extra.get("tools"):
        body["tools"] = [{"name": t["function"]["name"], "description": t["function"].get("description", ""),
                          "input_schema": t["function"].get("parameters") or {"type": "object"}} for t in tools]
    choice = extra.get("tool_choice")
    if isinstance(choice, dict):
        body["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}
    elif choice in ("auto", "none"):
        body["tool_choice"] = {"type": choice}
    elif choice == "required":
        body["tool_choice"] = {"type": "any"}
    fmt = extra.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        body["output_config"] = {"format": {"type": "json_schema", "schema": fmt["json_schema"]["schema"]}}
    return body


def _responses(messages: list[Json], extra: Json) -> Json:
    system = "\n\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    items: list[Json] = []
    for m in messages:
        role = m.get("role")
        if role in ("user", "assistant") and _text(m.get("content")):
            items.append({"type": "message", "role": role, "content": _text(m.get("content"))})
        if role == "assistant":
            items += [{"type": "function_call", "call_id": c["id"], "name": c["function"]["name"],
                       "arguments": c["function"].get("arguments") or "{}"} for c in m.get("tool_calls") or []]
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": m.get("tool_call_id"),
                          "output": _text(m.get("content"))})
    body: Json = {"input": items, "store": False}
    if system:
        body["instructions"] = system
    for src, dst in (("max_tokens", "max_output_tokens"), ("temperature", "temperature"), ("seed", "seed")):
        if extra.get(src) is not None:
            body[dst] = extra[src]
    if tools := extra.get("tools"):
        body["tools"] = [{"type": "function", "name": t["function"]["name"],
                          "description": t["function"].get("description", ""),
                          "parameters": t["function"].get("parameters") or {"type": "object"}} for t in tools]
    choice = extra.get("tool_choice")
    if isinstance(choice, dict):
        body["tool_choice"] = {"type": "function", "name": choice["function"]["name"]}
    elif choice is not None:
        body["tool_choice"] = choice
    fmt = extra.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        js = fmt["json_schema"]
        body["text"] = {"format": {"type": "json_schema", "name": js.get("name", "answer"), "schema": js["schema"],
                                   "strict": bool(js.get("strict", True))}}
    return body


def request(protocol: WireProtocol, messages: list[Json], extra: Json) -> tuple[str, Json]:
    """The path and body of one non-streamed call in ``protocol`` (``extra``: chat completions fields)."""
    if protocol == "anthropic":
        return "/v1/messages", _anthropic(messages, extra)
    if protocol == "responses":
        return "/v1/responses", _responses(messages, extra)
    if protocol == "openai":
        return "/v1/chat/completions", {"messages": messages, "stream": False, **extra}
    raise BenchError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def answer(protocol: WireProtocol, body: Json) -> tuple[Json, int, int, Json | None]:
    """(chat completions message, prompt tokens, completion tokens, timings) of an answer in ``protocol``.

    Timings: the answer's own (chat completions), else ``prompt_n`` (prompt tokens processed, not cached)
    from the protocol's usage."""
    if protocol == "openai":
        usage = body.get("usage") or {}
        msg = ((body.get("choices") or [{}])[0]).get("message") or {}
        return msg, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), \
            body.get("timings")
    calls: list[Json] = []
    text: list[str] = []
    if protocol == "anthropic":
        for block in body.get("content") or []:
            if block.get("type") == "text":
                text.append(block.get("text") or "")
            elif block.get("type") == "tool_use":
                calls.append({"id": block.get("id"), "type": "function", "function": {
                    "name": block.get("name"), "arguments": json.dumps(block.get("input") or {})}})
        usage = body.get("usage") or {}
        fresh, cached = int(usage.get("input_tokens") or 0), int(usage.get("cache_read_input_tokens") or 0)
        prompt, completion = fresh + cached, int(usage.get("output_tokens") or 0)
    else:
        for item in body.get("output") or []:
            if item.get("type") == "message":
                text += [p.get("text") or "" for p in item.get("content") or [] if p.get("type") == "output_text"]
            elif item.get("type") == "function_call":
                calls.append({"id": item.get("call_id"), "type": "function", "function": {
                    "name": item.get("name"), "arguments": item.get("arguments") or "{}"}})
        usage = body.get("usage") or {}
        prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
        cached = int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)
        fresh = prompt - cached
    message: Json = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message, prompt, completion, {"prompt_n": fresh}
