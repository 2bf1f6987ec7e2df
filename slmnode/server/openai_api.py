"""OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from slmnode.chat.capabilities import capabilities
from slmnode.chat.types import ChatEvent
from slmnode.engine.chat_format import render_completion
from slmnode.engine.client import Done, Token
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.errors import RequestError, SlmnodeError
from slmnode.server.chat import finish_chat, open_chat
from slmnode.server.errors import openai_body
from slmnode.server.openai_chat import chunks, conversation, message_body, usage_body
from slmnode.server.service import Node, collect, event_stream, generation_params, primed, stream_fault, timings

router = APIRouter(prefix="/v1", tags=["openai"])


class _Base(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    repeat_penalty: float | None = Field(None, ge=0.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = Field(1, ge=1)

    def params(self) -> GenerationParams:
        if self.n != 1:
            raise RequestError("n must be 1: this node returns one choice per request", param="n")
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        given = {
            "max_tokens": self.max_completion_tokens or self.max_tokens, "temperature": self.temperature,
            "top_p": self.top_p, "top_k": self.top_k, "min_p": self.min_p, "seed": self.seed,
            "presence_penalty": self.presence_penalty, "frequency_penalty": self.frequency_penalty,
            "repeat_penalty": self.repeat_penalty,
        }
        return generation_params({"stop": stop, **given})


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatRequest(_Base):
    messages: list[dict[str, Any]] = Field(..., min_length=1)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None


class CompletionRequest(_Base):
    prompt: str | list[str]


def _apply_format(params: GenerationParams, fmt: ResponseFormat | None) -> GenerationParams:
    if fmt is None or fmt.type == "text":
        return params
    if fmt.type == "json_object":
        return params.model_copy(update={"json_object": True})
    schema = (fmt.json_schema or {}).get("schema")
    if not isinstance(schema, dict):
        raise RequestError("response_format.json_schema.schema must be a JSON schema object",
                           param="response_format")
    return params.model_copy(update={"json_schema": schema})


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    node: Node = request.app.state.node
    local = [
        {"id": m.name, "object": "model", "created": int(m.added_at), "owned_by": "slmnode",
         "meta": {"n_ctx": node.settings.ctx, "n_ctx_train": m.info.context_length, "size": m.info.size_bytes,
                  "n_params": m.info.parameter_count, "loaded": node.models.slot_of(m.name) is not None,
                  "capabilities": list((caps := capabilities(m.info)).names), "tool_format": caps.tool_format}}
        for m in node.models.available()]
    routed = node.router.model_entries() if node.router is not None else []
    return {"object": "list", "data": local + routed}


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatRequest, request: Request) -> JSONResponse | StreamingResponse:
    node: Node = request.app.state.node
    if node.router is not None:
        return await node.router.chat(node, body, request)
    return await local_chat(node, body)


OnDone = Callable[[Usage | None, str], Awaitable[None]]


async def local_chat(node: Node, body: ChatRequest, on_done: OnDone | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse | StreamingResponse:
    """Answer a chat request with a local model. Admission errors (queue full, too hot, unknown model,
    bad request) raise before any response exists; ``on_done(usage or None, status)`` runs at the end."""
    conv = conversation(body, _apply_format(body.params(), body.response_format))
    chat = await open_chat(node, conv)
    base = {"id": f"chatcmpl-{secrets.token_hex(12)}", "created": int(time.time()), "model": chat.model.name,
            "system_fingerprint": "slmnode"}
    if not body.stream:
        t0 = time.perf_counter()
        try:
            result = await finish_chat(chat)
        except BaseException:
            if on_done is not None:
                await on_done(None, "error")
            raise
        node.metrics.latency.labels("chat").observe(time.perf_counter() - t0)
        if on_done is not None:
            await on_done(result.usage, "ok")
        return JSONResponse({**base, "object": "chat.completion",
                             "choices": [{"index": 0, "message": message_body(result),
                                          "finish_reason": result.finish_reason, "logprobs": None}],
                             "usage": usage_body(result.usage), "timings": timings(result.usage)}, headers=headers)
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    return event_stream(_chat_stream(chat.events, base, include_usage, on_done), chat, "text/event-stream", headers)


async def _chat_stream(events: AsyncIterator[ChatEvent], base: dict[str, Any], include_usage: bool,
                       on_done: OnDone | None = None) -> AsyncIterator[str]:
    chunk = {**base, "object": "chat.completion.chunk"}
    final: Usage | None = None
    try:
        async for delta, finish, usage in chunks(events):
            yield _sse({**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})
            if usage is not None:
                final = usage
                if include_usage:
                    yield _sse({**chunk, "choices": [], "usage": usage_body(usage), "timings": timings(usage)})
    except SlmnodeError as exc:
        yield _sse(openai_body(exc.message, exc.error_type, exc.code, exc.param))
    except Exception as exc:  # a bug: say so in the stream, log the traceback
        yield _sse(openai_body(stream_fault("/v1/chat/completions", exc), "server_error", "internal_error"))
    finally:
        if on_done is not None:
            await on_done(final, "ok" if final is not None else "error")
    yield "data: [DONE]\n\n"


@router.post("/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
    node: Node = request.app.state.node
    model = node.models.resolve(body.model)
    prompt = body.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise RequestError("prompt must be a string or a list of exactly one string", param="prompt")
        prompt = prompt[0]
    if not prompt:
        raise RequestError("prompt must not be empty", param="prompt")
    rendered = render_completion(model.info, prompt)
    params = body.params()
    cid = f"cmpl-{secrets.token_hex(12)}"
    base = {"id": cid, "object": "text_completion", "created": int(time.time()), "model": model.name}
    lease = await node.models.acquire(model.name)
    if not body.stream:
        text, finish, usage = await collect(node, lease, rendered.prompt, params)
        return JSONResponse({**base, "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
                             "usage": usage_body(usage), "timings": timings(usage)})

    evs = await primed(node, lease, rendered.prompt, params)

    async def stream() -> AsyncIterator[str]:
        try:
            async for ev in evs:
                if isinstance(ev, Token):
                    yield _sse({**base, "choices": [{"index": 0, "text": ev.text, "finish_reason": None, "logprobs": None}]})
                elif isinstance(ev, Done):
                    yield _sse({**base, "choices": [{"index": 0, "text": "", "finish_reason": ev.finish_reason,
                                                     "logprobs": None}], "usage": usage_body(ev.usage)})
        except SlmnodeError as exc:
            yield _sse(openai_body(exc.message, exc.error_type, exc.code, exc.param))
        except Exception as exc:  # a bug: say so in the stream, log the traceback
            yield _sse(openai_body(stream_fault("/v1/completions", exc), "server_error", "internal_error"))
        yield "data: [DONE]\n\n"

    return event_stream(stream(), evs, "text/event-stream")
