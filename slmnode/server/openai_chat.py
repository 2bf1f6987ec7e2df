"""OpenAI chat completions on the chat seam: request → :class:`Conversation`, chat events → chunks / message.

Thinking goes to ``reasoning_content`` (``delta.reasoning_content`` in streams), as llama-server's
``--reasoning-format deepseek`` and DeepSeek's API send it; controls: ``reasoning_effort`` (``none`` = off),
``chat_template_kwargs.enable_thinking`` and llama-server's ``thinking_budget_tokens``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from slmnode.chat.types import (
    ChatEvent,
    ChatResult,
    Conversation,
    Finished,
    Message,
    Reasoning,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolSpec,
)
from slmnode.engine.chat_format import text_of
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.engine.tools import function_defs
from slmnode.errors import RequestError


def _arguments_text(args: Any) -> str:
    if isinstance(args, str):
        return args or "{}"
    return json.dumps(args if args is not None else {}, ensure_ascii=False)


def messages_from_openai(messages: list[dict[str, Any]]) -> list[Message]:
    """OpenAI (and Ollama) chat messages as seam messages; tool results get their function's name."""
    if not messages:
        raise RequestError("messages must contain at least one message", param="messages")
    out: list[Message] = []
    names: dict[str, str] = {}
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise RequestError(f"{where} must be an object with a role", param="messages")
        role = m.get("role")
        if m.get("images"):
            raise RequestError(f"{where}: images are not supported by this model; send text only", param="messages")
        if role in ("system", "developer"):
            out.append(Message("system", text_of(m.get("content"), where)))
        elif role == "user":
            out.append(Message("user", text_of(m.get("content"), where)))
        elif role == "assistant":
            calls = []
            for j, c in enumerate(m.get("tool_calls") or []):
                fn = (c.get("function") or {}) if isinstance(c, dict) else {}
                if not isinstance(fn.get("name"), str):
                    raise RequestError(f"{where}.tool_calls[{j}].function.name must be a string", param="messages")
                cid = str(c.get("id") or f"call_{i}_{j}")
                names[cid] = fn["name"]
                calls.append(ToolCall(cid, fn["name"], _arguments_text(fn.get("arguments"))))
            reasoning = m.get("reasoning_content") or m.get("thinking") or ""
            out.append(Message("assistant", text_of(m.get("content"), where),
                               reasoning=reasoning if isinstance(reasoning, str) else "", tool_calls=tuple(calls)))
        elif role in ("tool", "function"):
            answers = m.get("tool_call_id")
            fn_name = m.get("name") or m.get("tool_name") or names.get(str(answers))
            out.append(Message("tool", text_of(m.get("content"), where), tool_call_id=answers, name=fn_name))
        else:
            raise RequestError(f"{where}.role must be one of system, developer, user, assistant, tool; got {role!r}",
                               param="messages")
    return out


def tools_from_openai(tools: list[dict[str, Any]] | None) -> list[ToolSpec]:
    return [ToolSpec(f["name"], f.get("description", ""), f["parameters"]) for f in function_defs(tools)]


def tool_choice_from_openai(choice: Any, tools: list[ToolSpec]) -> ToolChoice:
    if choice in (None, "auto"):
        return ToolChoice("auto")
    if choice in ("none", "required"):
        return ToolChoice(choice)
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if not any(t.name == name for t in tools):
            raise RequestError(f"tool_choice names function '{name}', which is not in tools", param="tool_choice")
        return ToolChoice("function", name)
    raise RequestError("tool_choice must be 'none', 'auto', 'required' or "
                       "{\"type\": \"function\", \"function\": {\"name\": ...}}", param="tool_choice")


def reasoning_from_openai(effort: Any, template_kwargs: dict[str, Any], budget: Any) -> Reasoning:
    enabled: bool | None = None
    if isinstance(template_kwargs.get("enable_thinking"), bool):
        enabled = template_kwargs["enable_thinking"]
    if effort is not None:
        if effort not in ("none", "minimal", "low", "medium", "high"):
            raise RequestError("reasoning_effort must be one of none, minimal, low, medium, high",
                               param="reasoning_effort")
        enabled = effort != "none"
    if budget is not None and (not isinstance(budget, int) or budget < 0):
        raise RequestError("thinking_budget_tokens must be a whole number >= 0", param="thinking_budget_tokens")
    if budget == 0:
        enabled = False
    return Reasoning(enabled, budget if budget else None)


def conversation(body: Any, params: GenerationParams) -> Conversation:
    """A :class:`ChatRequest` (openai_api) as a Conversation."""
    extra = body.model_extra or {}
    kwargs = extra.get("chat_template_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise RequestError("chat_template_kwargs must be an object", param="chat_template_kwargs")
    tools = tools_from_openai(body.tools)
    return Conversation(
        messages=messages_from_openai(body.messages), params=params, model=body.model, tools=tools,
        tool_choice=tool_choice_from_openai(body.tool_choice, tools),
        parallel_tool_calls=extra.get("parallel_tool_calls") is not False,
        reasoning=reasoning_from_openai(extra.get("reasoning_effort"), kwargs, extra.get("thinking_budget_tokens")),
        template_kwargs=kwargs, stream=bool(body.stream))


def usage_body(u: Usage) -> dict[str, Any]:
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens, "prompt_tokens_details": {"cached_tokens": u.cached_tokens}}


def message_body(r: ChatResult) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": r.content if (r.content or not r.tool_calls) else None}
    if r.reasoning:
        msg["reasoning_content"] = r.reasoning
    if r.tool_calls:
        msg["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                             for c in r.tool_calls]
    return msg


def delta_body(ev: ChatEvent) -> dict[str, Any] | None:
    """The ``delta`` of a chunk for one event (None for :class:`Finished`)."""
    if isinstance(ev, TextDelta):
        return {"content": ev.text}
    if isinstance(ev, ReasoningDelta):
        return {"reasoning_content": ev.text}
    if isinstance(ev, ToolCallDelta):
        call: dict[str, Any] = {"index": ev.index, "function": {"arguments": ev.arguments}}
        if ev.id is not None:
            call["id"], call["type"] = ev.id, "function"
        if ev.name is not None:
            call["function"]["name"] = ev.name
        return {"tool_calls": [call]}
    return None


async def chunks(events: AsyncIterator[ChatEvent]) -> AsyncIterator[tuple[dict[str, Any], str | None, Usage | None]]:
    """(delta, finish_reason, usage) per chunk to send: the role first, then one per event, then the finish."""
    yield {"role": "assistant", "content": ""}, None, None
    async for ev in events:
        if isinstance(ev, Finished):
            yield {}, ev.result.finish_reason, ev.result.usage
            return
        d = delta_body(ev)
        if d is not None:
            yield d, None, None
