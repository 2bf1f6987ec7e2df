"""The router for the other wire protocols (Anthropic Messages, OpenAI Responses): translations only.

The router decides on an OpenAI chat request (its classifier and privacy guard read chat messages), so a
``/v1/messages`` or ``/v1/responses`` request is routed through its protocol-neutral :class:`Conversation`:

    Conversation ──chat_request──▶ chat completions body: classify · privacy guard · the upstream's payload
    local  ─▶ the adapter's own local path; its answer (JSON or SSE) is read for the ledger's token counts
    cloud  ─▶ a whole chat completion ──chat_result──▶ ChatResult ──▶ the protocol's answer, or its stream
              events replayed from the whole answer (cloud answers to these protocols are not streamed
              token by token)

The router speaks chat completions to every upstream; an ``api = "anthropic"`` upstream translates that once
more (:mod:`.anthropic_upstream`), so a /v1/messages request to it is not passed through verbatim.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi.responses import JSONResponse, Response, StreamingResponse

from slmnode.chat.types import (
    ChatEvent,
    ChatResult,
    Conversation,
    Finished,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)
from slmnode.engine.protocol import Usage
from slmnode.server import anthropic_api, responses_api
from slmnode.server.errors import anthropic_error

Protocol = Literal["anthropic", "responses"]
LocalPath = Callable[[Conversation], Awaitable[Response]]

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls"}


def chat_request(conv: Conversation) -> dict[str, Any]:
    """``conv`` as an OpenAI chat completions request body (what the router classifies, guards and sends)."""
    messages: list[dict[str, Any]] = []
    for m in conv.messages:
        if m.role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.content or None}
            if m.tool_calls:
                msg["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls]
            messages.append(msg)
        elif m.role == "tool":
            messages.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        else:
            messages.append({"role": m.role, "content": m.content})
    body: dict[str, Any] = {"model": conv.model, "messages": messages, "stream": False}
    p = conv.params
    for key in ("max_tokens", "temperature", "top_p", "seed"):
        if key in p.model_fields_set and getattr(p, key) is not None:
            body[key] = getattr(p, key)
    if p.stop:
        body["stop"] = list(p.stop)
    if p.json_schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": p.json_schema}}
    elif p.json_object:
        body["response_format"] = {"type": "json_object"}
    if conv.tools:
        body["tools"] = [t.as_openai() for t in conv.tools]
        choice = conv.tool_choice
        body["tool_choice"] = ({"type": "function", "function": {"name": choice.name}} if choice.mode == "function"
                               else choice.mode)
        if not conv.parallel_tool_calls:
            body["parallel_tool_calls"] = False
    return body


def chat_result(answer: dict[str, Any], model: str) -> ChatResult:
    """A whole chat completion (an upstream's answer) as the seam's result."""
    choice = answer["choices"][0]
    msg = choice.get("message") or {}
    calls = []
    for i, c in enumerate(msg.get("tool_calls") or []):
        fn = c.get("function") or {}
        args = fn.get("arguments")
        calls.append(ToolCall(str(c.get("id") or f"call_{i}"), str(fn.get("name") or ""),
                              args if isinstance(args, str) and args else json.dumps(args or {})))
    u = answer.get("usage") or {}
    finish = _FINISH.get(str(choice.get("finish_reason")), "stop")
    if calls:
        finish = "tool_calls"
    reasoning = msg.get("reasoning_content") or msg.get("reasoning") or ""
    return ChatResult(content=msg.get("content") or "", reasoning=reasoning if isinstance(reasoning, str) else "",
                      tool_calls=calls, finish_reason=finish,  # type: ignore[arg-type]
                      usage=Usage(prompt_tokens=int(u.get("prompt_tokens") or 0),
                                  completion_tokens=int(u.get("completion_tokens") or 0)),
                      model=str(answer.get("model") or model))


def replay(result: ChatResult) -> list[ChatEvent]:
    """The event stream a whole result would have come in (thinking, text, each call, then Finished)."""
    out: list[ChatEvent] = []
    if result.reasoning:
        out.append(ReasoningDelta(result.reasoning))
    if result.content:
        out.append(TextDelta(result.content))
    out += [ToolCallDelta(i, c.arguments, c.id, c.name) for i, c in enumerate(result.tool_calls)]
    out.append(Finished(result))
    return out


def _sse_events(chunk: str | bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE event in a chunk our adapters wrote (one or more whole events)."""
    text = chunk.decode() if isinstance(chunk, bytes) else chunk
    out = []
    for block in text.split("\n\n"):
        name, data = "", ""
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
        if data:
            try:
                obj = json.loads(data)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append((name or str(obj.get("type", "")), obj))
    return out


@dataclass
class Tally:
    """What a local answer said about itself (for the ledger)."""

    tokens_in: int = 0
    tokens_out: int = 0
    done: bool = False
    failed: bool = False


@dataclass
class Wire:
    """One request of another protocol on its way through the router."""

    protocol: Protocol
    body: Any  # the adapter's request model (MessagesRequest / ResponsesRequest)
    conv: Conversation
    local: LocalPath

    @property
    def stream(self) -> bool:
        return self.conv.stream

    # -- the local answer, read for the ledger ------------------------------------------------------------
    def usage_of(self, obj: dict[str, Any], tally: Tally) -> None:
        """Note the usage in a whole answer or one stream event of this protocol."""
        kind = obj.get("type")
        if self.protocol == "anthropic":
            if kind == "error":
                tally.failed = True
            usage = obj.get("usage") if kind in ("message", "message_delta") else None
            if isinstance(usage, dict):
                tally.tokens_in = int(usage.get("input_tokens") or 0) + int(usage.get("cache_read_input_tokens") or 0)
                tally.tokens_out = int(usage.get("output_tokens") or 0)
                tally.done = True
            return
        if kind in ("error", "response.failed"):
            tally.failed = True
        resp = obj.get("response") if kind in ("response.completed", "response.incomplete") else obj
        usage = resp.get("usage") if isinstance(resp, dict) and resp.get("object") == "response" else None
        if isinstance(usage, dict):
            tally.tokens_in = int(usage.get("input_tokens") or 0)
            tally.tokens_out = int(usage.get("output_tokens") or 0)
            tally.done = True

    async def tap(self, resp: Response, headers: dict[str, str],
                  on_done: Callable[[Tally], Awaitable[None]]) -> Response:
        """``resp`` with the route headers; ``on_done`` runs once its usage is known (a stream: at its end)."""
        resp.headers.update(headers)
        tally = Tally()
        if not isinstance(resp, StreamingResponse):
            try:
                obj = json.loads(bytes(resp.body))
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                self.usage_of(obj, tally)
            tally.failed = tally.failed or resp.status_code >= 400
            await on_done(tally)
            return resp
        inner = resp.body_iterator

        async def body() -> AsyncIterator[str | bytes]:
            try:
                async for chunk in inner:
                    for _, obj in _sse_events(chunk):  # type: ignore[arg-type]
                        self.usage_of(obj, tally)
                    yield chunk  # type: ignore[misc]
            finally:
                await on_done(tally)

        resp.body_iterator = body()
        return resp

    # -- a cloud answer in this protocol ----------------------------------------------------------------
    def render(self, result: ChatResult, headers: dict[str, str]) -> Response:
        events = replay(result)
        if self.protocol == "anthropic":
            mid = f"msg_{secrets.token_hex(12)}"
            if not self.stream:
                return JSONResponse(anthropic_api.message(result, mid), headers=headers)
            renderer = anthropic_api.StreamRenderer(mid, result.model)
            lines = renderer.start() + [line for ev in events for line in renderer.feed(ev)]
        else:
            writer = responses_api.ResponseWriter(responses_api.response_skeleton(self.body, self.conv, result.model))
            evs = ([] if not self.stream else writer.start()) + [e for ev in events for e in writer.feed(ev)]
            if not self.stream:
                return JSONResponse(writer.response, headers=headers)
            lines = [f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n" for e in evs]

        async def replayed() -> AsyncIterator[str]:
            for line in lines:
                yield line

        return StreamingResponse(replayed(), media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache"})

    def rejected(self, status: int, body: Any, headers: dict[str, str]) -> JSONResponse:
        """An upstream's 4xx, in this protocol's error shape."""
        if self.protocol == "responses":
            return JSONResponse(body, status_code=status, headers=headers)
        err = body.get("error") if isinstance(body, dict) else None
        message = err.get("message") if isinstance(err, dict) else None
        status, shaped = anthropic_error(status, str(message or f"the upstream rejected the request ({status})"))
        return JSONResponse(shaped, status_code=status, headers=headers)
