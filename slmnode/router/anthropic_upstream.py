"""An Anthropic-format upstream (``api = "anthropic"``): chat completions in, Anthropic Messages out, and back.

The router speaks chat completions to every upstream (:mod:`.upstream`); for an upstream whose ``api`` is
``anthropic`` the request body is translated here (:func:`messages_body`), sent to ``{base_url}/messages``
with ``x-api-key`` and ``anthropic-version``, and the answer turned back into a chat completion
(:func:`completion`). A streamed request is answered whole and replayed as chat completion chunks
(:func:`chunks`): the upstream's own stream is not relayed token by token.
"""

from __future__ import annotations

import json
from typing import Any

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; chat completions may omit it
_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
         "pause_turn": "stop", "refusal": "stop"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        obj = json.loads(arguments or "{}")
    except (TypeError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def messages_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat completions request body as an Anthropic Messages request for ``model``."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if turns and turns[-1]["role"] == role:  # Anthropic alternates roles: merge (tool results + user text)
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})

    for m in body.get("messages") or []:
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(_text(m.get("content")))
        elif role == "user":
            add("user", [{"type": "text", "text": _text(m.get("content"))}])
        elif role == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": t} for t in [_text(m.get("content"))] if t]
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                blocks.append({"type": "tool_use", "id": c.get("id"), "name": fn.get("name"),
                               "input": _input(fn.get("arguments"))})
            add("assistant", blocks or [{"type": "text", "text": ""}])
        elif role in ("tool", "function"):
            add("user", [{"type": "tool_result", "tool_use_id": m.get("tool_call_id"),
                          "content": _text(m.get("content"))}])
    out: dict[str, Any] = {"model": model, "messages": turns,
                           "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")
                           or DEFAULT_MAX_TOKENS}
    if system:
        out["system"] = "\n\n".join(system)
    if body.get("temperature") is not None:
        out["temperature"] = min(1.0, float(body["temperature"]))  # Anthropic's range is 0..1
    for key in ("top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if tools := body.get("tools"):
        out["tools"] = [{"name": f["name"], "description": f.get("description", ""),
                         "input_schema": f.get("parameters") or {"type": "object", "properties": {}}}
                        for t in tools if isinstance(f := t.get("function", t), dict)]
        choice = body.get("tool_choice")
        tc: dict[str, Any] = {"type": "auto"}
        if choice in ("none", "auto"):
            tc = {"type": choice}
        elif choice == "required":
            tc = {"type": "any"}
        elif isinstance(choice, dict):
            tc = {"type": "tool", "name": (choice.get("function") or {}).get("name") or choice.get("name")}
        if body.get("parallel_tool_calls") is False and tc["type"] != "none":
            tc["disable_parallel_tool_use"] = True
        out["tool_choice"] = tc
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema" and isinstance((fmt.get("json_schema") or {}).get("schema"), dict):
        out["output_config"] = {"format": {"type": "json_schema", "schema": fmt["json_schema"]["schema"]}}
    return out


def completion(answer: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic message as a chat completion (raises KeyError/TypeError when it is not one)."""
    text, thinking, calls = [], [], []
    for block in answer["content"]:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
        elif kind == "tool_use":
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": json.dumps(block.get("input") or {})}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    u = answer.get("usage") or {}
    prompt = sum(int(u.get(k) or 0) for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
    out = int(u.get("output_tokens") or 0)
    return {"id": f"chatcmpl-{answer.get('id', 'anthropic')}", "object": "chat.completion", "created": 0,
            "model": answer.get("model", ""),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if calls else _STOP.get(str(answer.get("stop_reason")), "stop")}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}}


def error_body(status: int, text: str) -> dict[str, Any]:
    """An Anthropic error answer in OpenAI's error shape (what chat completions clients read)."""
    try:
        err = json.loads(text).get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    return {"error": {"message": str(err.get("message") or text[:500]), "type": str(err.get("type") or "upstream_error"),
                      "param": None, "code": str(status)}}


def chunks(answer: dict[str, Any]) -> list[str]:
    """A whole chat completion replayed as the ``data:`` payloads of a stream (usage chunk and ``[DONE]`` last)."""
    choice = answer["choices"][0]
    msg = choice["message"]
    base = {"id": answer["id"], "object": "chat.completion.chunk", "created": 0, "model": answer["model"]}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return json.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    out = [chunk({"role": "assistant", "content": ""})]
    if msg.get("reasoning_content"):
        out.append(chunk({"reasoning_content": msg["reasoning_content"]}))
    if msg.get("content"):
        out.append(chunk({"content": msg["content"]}))
    for i, call in enumerate(msg.get("tool_calls") or []):
        out.append(chunk({"tool_calls": [{"index": i, **call}]}))
    out.append(chunk({}, choice["finish_reason"]))
    out.append(json.dumps({**base, "choices": [], "usage": answer["usage"]}))
    out.append("[DONE]")
    return out
