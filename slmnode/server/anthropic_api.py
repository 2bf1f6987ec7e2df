"""Anthropic Messages routes: ``POST /v1/messages`` (streaming or not) and ``POST /v1/messages/count_tokens``.

A thin translation on the chat seam (:mod:`slmnode.server.chat`): the wire request becomes a
:class:`~slmnode.chat.types.Conversation`, chat events become Anthropic's content blocks and SSE events. Tool
input is grammar-enforced when a tool is forced, through the same engine path as chat completions. Errors use
Anthropic's shape (:func:`slmnode.server.errors.anthropic_error`). What is supported and refused: docs/api-anthropic.md.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from slmnode.chat.prepare import arguments_object, prepare
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
from slmnode.engine.protocol import Usage
from slmnode.errors import RequestError, SlmnodeError
from slmnode.server.chat import open_chat, run_chat
from slmnode.server.errors import anthropic_error
from slmnode.server.service import Node, event_stream, generation_params, stream_fault

router = APIRouter(prefix="/v1/messages", tags=["anthropic"])

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def stop_fields(result: ChatResult) -> dict[str, Any]:
    """``stop_reason`` and ``stop_sequence``: "stop_sequence" when one of the request's stop_sequences ended it."""
    if result.stop_sequence is not None and result.finish_reason == "stop":
        return {"stop_reason": "stop_sequence", "stop_sequence": result.stop_sequence}
    return {"stop_reason": STOP_REASONS[result.finish_reason], "stop_sequence": None}


class AnthropicTool(BaseModel):
    model_config = ConfigDict(extra="allow")  # cache_control and the like are accepted and ignored

    type: str | None = None  # None or "custom": a client tool; Anthropic's server tools are refused
    name: str = Field(..., min_length=1)
    description: str = ""
    input_schema: dict[str, Any]


class AnthropicToolChoice(BaseModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool = False


class Thinking(BaseModel):
    model_config = ConfigDict(extra="allow")  # display: accepted and ignored (thinking is shown as it comes)

    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: int | None = Field(None, ge=1)


class OutputFormat(BaseModel):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(..., alias="schema")


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="allow")  # effort: accepted and ignored

    format: OutputFormat | None = None


class CountTokensRequest(BaseModel):
    """What ``count_tokens`` takes; :class:`MessagesRequest` adds the generation settings."""

    model_config = ConfigDict(extra="allow")  # metadata, service_tier, container...: accepted and ignored

    model: str
    messages: list[dict[str, Any]] = Field(..., min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[AnthropicTool] | None = None
    tool_choice: AnthropicToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(..., ge=1)
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    stop_sequences: list[str] | None = None
    stream: bool = False


# -- request → Conversation ------------------------------------------------------------------------------------
def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise RequestError(f"{where}: must be a string or a list of content blocks (objects)", param=where)
    return content


def _text(content: Any, where: str) -> str:
    """The text of a string or of a list of text blocks (system prompts, tool results)."""
    parts = []
    for i, block in enumerate(_blocks(content, where)):
        if block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise RequestError(f"{where}.{i}: only text blocks are supported here (this node serves text models); "
                               f"got type {block.get('type')!r}", param=where)
        parts.append(block["text"])
    return "\n".join(parts)


def _assistant(blocks: list[dict[str, Any]], where: str, names: dict[str, str]) -> Message:
    text, thinking, calls = [], [], []
    for i, b in enumerate(blocks):
        kind = b.get("type")
        if kind == "text" and isinstance(b.get("text"), str):
            text.append(b["text"])
        elif kind == "thinking" and isinstance(b.get("thinking"), str):
            thinking.append(b["thinking"])  # the signature is not checked: this node signs nothing
        elif kind == "redacted_thinking":
            continue
        elif kind == "tool_use" and isinstance(b.get("id"), str) and isinstance(b.get("name"), str):
            if not isinstance(b.get("input", {}), dict):
                raise RequestError(f"{where}.{i}.input: must be an object", param=f"{where}.{i}.input")
            names[b["id"]] = b["name"]
            calls.append(ToolCall(b["id"], b["name"], json.dumps(b.get("input", {}), ensure_ascii=False)))
        else:
            raise RequestError(f"{where}.{i}: an assistant turn takes text, thinking and tool_use blocks "
                               f"(with their fields); got type {kind!r}", param=where)
    return Message("assistant", "".join(text), reasoning="".join(thinking), tool_calls=tuple(calls))


def _user(blocks: list[dict[str, Any]], where: str, names: dict[str, str]) -> list[Message]:
    out: list[Message] = []
    text: list[str] = []
    for i, b in enumerate(blocks):
        kind = b.get("type")
        if kind == "text" and isinstance(b.get("text"), str):
            text.append(b["text"])
        elif kind == "tool_result" and isinstance(b.get("tool_use_id"), str):
            if text:
                out.append(Message("user", "\n".join(text)))
                text = []
            result = _text(b.get("content", ""), f"{where}.{i}.content")
            if b.get("is_error"):
                result = f"Error: {result}"
            out.append(Message("tool", result, tool_call_id=b["tool_use_id"], name=names.get(b["tool_use_id"])))
        else:
            raise RequestError(f"{where}.{i}: a user turn takes text and tool_result blocks (this node serves text "
                               f"models: images and documents are not supported); got type {kind!r}", param=where)
    if text or not out:
        out.append(Message("user", "\n".join(text)))
    return out


def _messages(body: CountTokensRequest) -> list[Message]:
    out: list[Message] = []
    if body.system:
        out.append(Message("system", _text(body.system, "system")))
    names: dict[str, str] = {}  # tool_use id -> tool name, for the results that answer them
    for i, m in enumerate(body.messages):
        where, role = f"messages.{i}", m.get("role")
        if "content" not in m:
            raise RequestError(f"{where}.content: field required", param=where)
        blocks = _blocks(m["content"], f"{where}.content")
        if role == "user":
            out.extend(_user(blocks, f"{where}.content", names))
        elif role == "assistant":
            out.append(_assistant(blocks, f"{where}.content", names))
        else:
            raise RequestError(f"{where}.role: must be 'user' or 'assistant'; got {role!r}", param=where)
    if body.messages[-1].get("role") == "assistant":
        raise RequestError("the last message is the assistant's: continuing a prefilled answer is not supported; "
                           "end with a user message", param="messages")
    return out


def _tools(body: CountTokensRequest) -> tuple[list[ToolSpec], ToolChoice, bool]:
    tools = []
    for i, t in enumerate(body.tools or []):
        if t.type not in (None, "custom"):
            raise RequestError(f"tools.{i}: server tool type {t.type!r} is not supported; define a client tool "
                               "with name, description and input_schema", param="tools")
        tools.append(ToolSpec(t.name, t.description, t.input_schema))
    choice = body.tool_choice or AnthropicToolChoice(type="auto")
    if choice.type in ("any", "tool") and not tools:
        raise RequestError(f"tool_choice {choice.type!r} needs tools", param="tool_choice")
    if choice.type == "tool" and choice.name not in {t.name for t in tools}:
        raise RequestError(f"tool_choice names tool {choice.name!r}, which is not in tools", param="tool_choice.name")
    mode = {"auto": "auto", "none": "none", "any": "required", "tool": "function"}[choice.type]
    return tools, ToolChoice(mode, choice.name if choice.type == "tool" else None), not choice.disable_parallel_tool_use  # type: ignore[arg-type]


def _reasoning(thinking: Thinking | None, max_tokens: int | None) -> Reasoning:
    if thinking is None:
        return Reasoning()  # the model's default
    if thinking.type == "disabled":
        return Reasoning(enabled=False)
    if thinking.type == "enabled":
        if thinking.budget_tokens is None:
            raise RequestError("thinking.budget_tokens: required when thinking is enabled", param="thinking")
        if max_tokens is not None and thinking.budget_tokens >= max_tokens:
            raise RequestError(f"thinking.budget_tokens ({thinking.budget_tokens}) must be less than max_tokens "
                               f"({max_tokens})", param="thinking.budget_tokens")
    return Reasoning(enabled=True, budget_tokens=thinking.budget_tokens)


def conversation(body: CountTokensRequest) -> Conversation:
    """The protocol-neutral request for ``body`` (raises :class:`RequestError` on what is refused)."""
    given: dict[str, Any] = {}
    max_tokens = None
    if isinstance(body, MessagesRequest):
        max_tokens = body.max_tokens
        given = {"max_tokens": body.max_tokens, "temperature": body.temperature, "top_p": body.top_p,
                 "top_k": body.top_k, "stop": list(body.stop_sequences or [])}
    tools, choice, parallel = _tools(body)
    params = generation_params(given)
    if body.output_config is not None and body.output_config.format is not None:
        params = params.model_copy(update={"json_schema": body.output_config.format.schema_})
    return Conversation(messages=_messages(body), params=params, model=body.model, tools=tools,
                        tool_choice=choice, parallel_tool_calls=parallel,
                        reasoning=_reasoning(body.thinking, max_tokens),
                        stream=isinstance(body, MessagesRequest) and body.stream)


# -- ChatResult / ChatEvents → Anthropic -----------------------------------------------------------------------
def usage(u: Usage) -> dict[str, int]:
    """Anthropic counts cached prompt tokens apart: input_tokens + cache_read_input_tokens is the whole prompt."""
    return {"input_tokens": u.prompt_tokens - u.cached_tokens, "output_tokens": u.completion_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": u.cached_tokens}


def signature(thinking: str) -> str:
    """A thinking block's signature: the node checks none, but clients drop (or turn into text) thinking without
    one when they send a conversation back; a digest of the text keeps the block as it was."""
    return "slmnode-sha256:" + hashlib.sha256(thinking.encode("utf-8")).hexdigest()


def message(result: ChatResult, mid: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if result.reasoning:
        content.append({"type": "thinking", "thinking": result.reasoning, "signature": signature(result.reasoning)})
    if result.content or not (result.tool_calls or result.reasoning):
        content.append({"type": "text", "text": result.content})
    content += [{"type": "tool_use", "id": c.id, "name": c.name, "input": arguments_object(c.arguments)}
                for c in result.tool_calls]
    return {"id": mid, "type": "message", "role": "assistant", "model": result.model, "content": content,
            **stop_fields(result), "usage": usage(result.usage)}


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class StreamRenderer:
    """Chat events → Anthropic's SSE events: ``message_start``, then per block ``content_block_start``,
    ``content_block_delta``... (a thinking block's last one a ``signature_delta``), ``content_block_stop`` (one
    ``ping`` after the first block starts), then ``message_delta`` (stop_reason, usage) and ``message_stop``."""

    def __init__(self, mid: str, model: str) -> None:
        self.mid, self.model = mid, model
        self.index = -1
        self.open: tuple[str, int] | None = None  # ("text" | "thinking" | "tool_use", tool call index)
        self.pinged = False
        self.thinking: list[str] = []  # the open thinking block's text, for its signature

    def start(self) -> list[str]:
        msg: dict[str, Any] = {"id": self.mid, "type": "message", "role": "assistant", "model": self.model,
                               "content": [], "stop_reason": None, "stop_sequence": None,
                               "usage": {"input_tokens": 0, "output_tokens": 0}}  # real counts: message_delta
        return [sse("message_start", {"type": "message_start", "message": msg})]

    def _close(self) -> list[str]:
        if self.open is None:
            return []
        out = []
        if self.open[0] == "thinking":
            sig = signature("".join(self.thinking))
            out.append(self._delta({"type": "signature_delta", "signature": sig}))
            self.thinking = []
        self.open = None
        return [*out, sse("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _block(self, kind: tuple[str, int], block: dict[str, Any]) -> list[str]:
        out = self._close()
        self.index += 1
        self.open = kind
        out.append(sse("content_block_start", {"type": "content_block_start", "index": self.index,
                                               "content_block": block}))
        out += self._ping()
        return out

    def _ping(self) -> list[str]:
        if self.pinged:
            return []
        self.pinged = True
        return [sse("ping", {"type": "ping"})]

    def _delta(self, delta: dict[str, Any]) -> str:
        return sse("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})

    def feed(self, ev: ChatEvent) -> list[str]:
        out: list[str] = []
        if isinstance(ev, TextDelta) and ev.text:
            if self.open != ("text", 0):
                out += self._block(("text", 0), {"type": "text", "text": ""})
            out.append(self._delta({"type": "text_delta", "text": ev.text}))
        elif isinstance(ev, ReasoningDelta) and ev.text:
            if self.open != ("thinking", 0):
                out += self._block(("thinking", 0), {"type": "thinking", "thinking": "", "signature": ""})
            self.thinking.append(ev.text)
            out.append(self._delta({"type": "thinking_delta", "thinking": ev.text}))
        elif isinstance(ev, ToolCallDelta):
            if self.open != ("tool_use", ev.index):
                out += self._block(("tool_use", ev.index), {"type": "tool_use", "id": ev.id or f"toolu_{ev.index}",
                                                             "name": ev.name or "", "input": {}})
            if ev.arguments:
                out.append(self._delta({"type": "input_json_delta", "partial_json": ev.arguments}))
        elif isinstance(ev, Finished):
            out += self._close() + self._ping()
            out.append(sse("message_delta", {
                "type": "message_delta",
                "delta": stop_fields(ev.result),
                "usage": usage(ev.result.usage)}))
            out.append(sse("message_stop", {"type": "message_stop"}))
        return out


def error_event(exc: Exception) -> str:
    if isinstance(exc, SlmnodeError):
        _, body = anthropic_error(exc.status_code, exc.message)
    else:  # a bug: say so in the stream, log the traceback
        _, body = anthropic_error(500, stream_fault("/v1/messages", exc))
    return sse("error", body)


# -- routes ------------------------------------------------------------------------------------------------------
@router.post("", response_model=None)
async def messages(body: MessagesRequest, request: Request) -> Response:
    node: Node = request.app.state.node
    conv = conversation(body)
    if node.router is not None:  # local or cloud, privacy guard, ledger: slmnode.router.wire
        return await node.router.wire(node, "anthropic", body, conv, request, lambda c: local_messages(node, c))
    return await local_messages(node, conv)


async def local_messages(node: Node, conv: Conversation) -> JSONResponse | StreamingResponse:
    """Answer with a local model."""
    mid = f"msg_{secrets.token_hex(12)}"
    if not conv.stream:
        t0 = time.perf_counter()
        result = await run_chat(node, conv)
        node.metrics.latency.labels("messages").observe(time.perf_counter() - t0)
        return JSONResponse(message(result, mid))
    stream = await open_chat(node, conv)  # admission and request errors raise here: a proper 4xx status
    renderer = StreamRenderer(mid, stream.model.name)

    async def events() -> AsyncIterator[str]:
        for line in renderer.start():
            yield line
        try:
            async with aclosing(stream.events) as evs:  # type: ignore[type-var]
                async for ev in evs:
                    for line in renderer.feed(ev):
                        yield line
        except Exception as exc:  # the response has started: the error goes in the stream
            yield error_event(exc)

    return event_stream(events(), stream, "text/event-stream", {"Cache-Control": "no-cache"})


@router.post("/count_tokens")
async def count_tokens(body: CountTokensRequest, request: Request) -> dict[str, int]:
    """The prompt's tokens as the model sees it: rendered with its chat template and tokenized by the engine."""
    node: Node = request.app.state.node
    conv = conversation(body)
    model = node.models.resolve(conv.model)
    prompt = prepare(model.info, conv, node.settings.chat_format).prompt
    lease = await node.models.acquire(model.name)
    try:
        return {"input_tokens": await lease.engine.count_tokens(prompt)}
    finally:
        lease.release()
