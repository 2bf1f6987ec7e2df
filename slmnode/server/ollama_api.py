"""Ollama-compatible routes: /api/chat, /api/generate, /api/tags, /api/show, /api/ps, /api/version.

Field names and units follow Ollama's API (durations in nanoseconds, NDJSON streaming on by
default, ``format`` = "json" or a JSON schema, sampling under ``options``).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from slmnode import __version__
from slmnode.chat.capabilities import capabilities
from slmnode.chat.prepare import arguments_object
from slmnode.chat.types import ChatResult, Conversation, Finished, Reasoning, ReasoningDelta, TextDelta, ToolCall
from slmnode.engine.client import Done, Token
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.errors import EngineError, RequestError, SlmnodeError
from slmnode.server.chat import finish_chat, open_chat
from slmnode.server.models import Lease, ServedModel, parse_keep_alive
from slmnode.server.openai_chat import messages_from_openai, tools_from_openai
from slmnode.server.service import Node, chat_job, event_stream, generation_params, outcome, primed, stream_fault

router = APIRouter(prefix="/api", tags=["ollama"])
OLLAMA_API_VERSION = "0.12.6"  # the Ollama API level these routes follow


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class Options(BaseModel):
    model_config = ConfigDict(extra="allow")
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, ge=0.0)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    num_predict: int | None = None
    seed: int | None = None
    stop: list[str] | None = None


class _Req(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    stream: bool = True
    format: str | dict[str, Any] | None = None
    options: Options | None = None
    keep_alive: str | int | float | None = None


class ChatReq(_Req):
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


class GenerateReq(_Req):
    prompt: str = ""
    system: str | None = None
    raw: bool = False
    suffix: str | None = None


class ShowReq(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    name: str | None = None


def _params(req: _Req) -> GenerationParams:
    o = req.options or Options()
    given: dict[str, Any] = {
        "temperature": o.temperature, "top_p": o.top_p, "top_k": o.top_k, "min_p": o.min_p,
        "repeat_penalty": o.repeat_penalty, "presence_penalty": o.presence_penalty,
        "frequency_penalty": o.frequency_penalty, "seed": o.seed,
        # num_predict < 0 means "until the context is full" in Ollama
        "max_tokens": o.num_predict if o.num_predict and o.num_predict > 0 else None,
    }
    params = generation_params({"stop": o.stop or [], **given}, prefix="options.")
    if req.format == "json":
        params = params.model_copy(update={"json_object": True})
    elif isinstance(req.format, dict):
        params = params.model_copy(update={"json_schema": req.format})
    elif req.format not in (None, ""):
        raise RequestError("format must be \"json\" or a JSON schema object")
    return params


def _durations(usage: Usage, total_ns: int, load_ns: int) -> dict[str, Any]:
    return {
        "total_duration": total_ns, "load_duration": load_ns,
        "prompt_eval_count": usage.prompt_tokens, "prompt_eval_duration": int(usage.prompt_ms * 1e6),
        "eval_count": usage.completion_tokens, "eval_duration": int(usage.generation_ms * 1e6),
    }


async def _respond(node: Node, lease: Lease, prompt: str, params: GenerationParams, stream: bool,
                   kind: str, fns: list[dict[str, Any]], t0: int) -> JSONResponse | StreamingResponse:
    model = lease.model
    load_ns = int((lease.engine.load_seconds or 0) * 1e9) if lease.fresh else 0
    evs = await primed(node, lease, prompt, params.model_copy(update={"stream": stream}))

    def body(text: str, done: bool) -> dict[str, Any]:
        if kind == "chat":
            return {"model": model.name, "created_at": _now(), "message": {"role": "assistant", "content": text}, "done": done}
        return {"model": model.name, "created_at": _now(), "response": text, "done": done}

    def final(ev: Done, text: str) -> dict[str, Any]:
        out = outcome(fns, text, ev.finish_reason, ev.usage)
        last = body("" if (stream and not out.tool_calls) else out.text, True)
        if out.tool_calls and kind == "chat":
            last["message"]["content"] = ""
            last["message"]["tool_calls"] = [{"function": {"name": c.name, "arguments": json.loads(c.arguments)}}
                                             for c in out.tool_calls]
        reason = {"length": "length"}.get(ev.finish_reason, "stop")
        return {**last, "done_reason": reason, **_durations(ev.usage, time.perf_counter_ns() - t0, load_ns)}

    if not stream:
        parts: list[str] = []
        async for ev in evs:
            if isinstance(ev, Token):
                parts.append(ev.text)
            elif isinstance(ev, Done):
                return JSONResponse(final(ev, "".join(parts)))
        raise EngineError("the engine ended the generation without a result; retry, and see the node's log")

    async def lines() -> AsyncIterator[str]:
        parts: list[str] = []
        try:
            async for ev in evs:
                if isinstance(ev, Token):
                    parts.append(ev.text)
                    if not fns:
                        yield json.dumps(body(ev.text, False)) + "\n"
                elif isinstance(ev, Done):
                    text = "".join(parts)
                    if fns and not outcome(fns, text, ev.finish_reason, ev.usage).tool_calls:
                        yield json.dumps(body(text, False)) + "\n"
                    yield json.dumps(final(ev, text)) + "\n"
        except SlmnodeError as exc:
            yield json.dumps({"error": exc.message}) + "\n"
        except Exception as exc:  # a bug: say so in the stream, log the traceback
            yield json.dumps({"error": stream_fault(f"/api/{kind}", exc)}) + "\n"

    return event_stream(lines(), evs, "application/x-ndjson")


def _keep_alive(req: _Req) -> float | None | str:
    return "unset" if req.keep_alive is None else parse_keep_alive(req.keep_alive)


async def _load_or_unload(node: Node, req: _Req, kind: str) -> JSONResponse:
    """Ollama: a request with nothing to generate loads the model (or unloads it with keep_alive 0)."""
    model = node.models.resolve(req.model)
    keep = _keep_alive(req)
    if keep == 0:
        await node.models.unload(model.name)
        reason = "unload"
    else:
        (await node.models.acquire(model.name, keep)).release()
        reason = "load"
    body: dict[str, Any] = {"model": model.name, "created_at": _now(), "done": True, "done_reason": reason}
    body.update({"message": {"role": "assistant", "content": ""}} if kind == "chat" else {"response": ""})
    return JSONResponse(body)


def _reasoning(think: Any) -> Reasoning:
    """Ollama's ``think``: a bool, or an effort level (which turns thinking on)."""
    if think is None:
        return Reasoning()
    if isinstance(think, bool):
        return Reasoning(think)
    if think in ("low", "medium", "high", "max"):
        return Reasoning(True)
    raise RequestError('think must be true, false, "low", "medium", "high" or "max"')


def _chat_message(text: str, thinking: str = "", calls: list[ToolCall] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": text}
    if thinking:
        msg["thinking"] = thinking
    if calls:
        msg["tool_calls"] = [{"function": {"index": i, "name": c.name, "arguments": arguments_object(c.arguments)}}
                             for i, c in enumerate(calls)]
    return msg


@router.post("/chat", response_model=None)
async def chat(body: ChatReq, request: Request) -> JSONResponse | StreamingResponse:
    node: Node = request.app.state.node
    t0 = time.perf_counter_ns()
    if not body.messages:
        return await _load_or_unload(node, body, "chat")
    tools = tools_from_openai(body.tools)
    conv = Conversation(messages_from_openai(body.messages), _params(body), model=body.model, tools=tools,
                        reasoning=_reasoning((body.model_extra or {}).get("think")), stream=body.stream)
    opened = await open_chat(node, conv, _keep_alive(body))
    name = opened.model.name
    load_ns = int((opened.lease.engine.load_seconds or 0) * 1e9) if opened.lease.fresh else 0

    def final(r: ChatResult, streamed: bool) -> dict[str, Any]:
        msg = _chat_message("" if streamed else r.content, "" if streamed else r.reasoning, r.tool_calls)
        return {"model": name, "created_at": _now(), "message": msg, "done": True,
                "done_reason": "length" if r.finish_reason == "length" else "stop",
                **_durations(r.usage, time.perf_counter_ns() - t0, load_ns)}

    if not body.stream:
        return JSONResponse(final(await finish_chat(opened), False))

    async def lines() -> AsyncIterator[str]:
        try:
            async with aclosing(opened.events) as events:  # type: ignore[type-var]
                async for ev in events:
                    if isinstance(ev, TextDelta | ReasoningDelta) and ev.text:
                        msg = _chat_message(ev.text) if isinstance(ev, TextDelta) else _chat_message("", ev.text)
                        yield json.dumps({"model": name, "created_at": _now(), "message": msg, "done": False}) + "\n"
                    elif isinstance(ev, Finished):
                        yield json.dumps(final(ev.result, True)) + "\n"
        except SlmnodeError as exc:
            yield json.dumps({"error": exc.message}) + "\n"
        except Exception as exc:  # a bug: say so in the stream, log the traceback
            yield json.dumps({"error": stream_fault("/api/chat", exc)}) + "\n"

    return event_stream(lines(), opened, "application/x-ndjson")


@router.post("/generate", response_model=None)
async def generate(body: GenerateReq, request: Request) -> JSONResponse | StreamingResponse:
    node: Node = request.app.state.node
    t0 = time.perf_counter_ns()
    if not body.prompt:
        return await _load_or_unload(node, body, "generate")
    model = node.models.resolve(body.model)
    params = _params(body)
    if body.raw:
        prompt = body.prompt
    else:
        msgs = ([{"role": "system", "content": body.system}] if body.system else []) + [{"role": "user", "content": body.prompt}]
        job = chat_job(model.info, msgs, params, chat_format=node.settings.chat_format)
        prompt, params = job.prompt, job.params
    lease = await node.models.acquire(model.name, _keep_alive(body))
    return await _respond(node, lease, prompt, params, body.stream, "generate", [], t0)


def _details(m: ServedModel) -> dict[str, Any]:
    return {"parent_model": "", "format": "gguf", "family": m.info.architecture, "families": [m.info.architecture],
            "parameter_size": m.info.parameter_size, "quantization_level": m.info.quant_type or "unknown"}


def _entry(m: ServedModel) -> dict[str, Any]:
    return {"name": m.name, "model": m.name, "modified_at": _iso(m.added_at), "size": m.info.size_bytes,
            "digest": m.sha256, "details": _details(m)}


@router.get("/tags")
async def tags(request: Request) -> dict[str, Any]:
    node: Node = request.app.state.node
    return {"models": [_entry(m) for m in node.models.available()]}


@router.post("/show")
async def show(body: ShowReq, request: Request) -> dict[str, Any]:
    node: Node = request.app.state.node
    m = node.models.resolve(body.model or body.name)
    info = m.info
    arch = info.architecture
    model_info = {"general.architecture": arch, "general.parameter_count": info.parameter_count,
                  f"{arch}.context_length": info.context_length, f"{arch}.block_count": info.block_count,
                  f"{arch}.embedding_length": info.embedding_length, f"{arch}.attention.head_count": info.head_count,
                  f"{arch}.attention.head_count_kv": info.head_count_kv}
    return {"modelfile": f"FROM {m.path}\n", "parameters": f"num_ctx {node.settings.ctx}",
            "template": info.chat_template or "", "details": _details(m), "model_info": model_info,
            "capabilities": list(capabilities(info).names), "modified_at": _iso(m.added_at)}


@router.get("/ps")
async def ps(request: Request) -> dict[str, Any]:
    node: Node = request.app.state.node
    out = []
    for slot in node.models.loaded():
        expires = node.models.expires_at(slot)
        out.append({**_entry(slot.model), "size_vram": 0, "context_length": slot.engine.n_ctx,
                    "expires_at": _iso(expires) if expires is not None else "2318-01-01T00:00:00Z"})
    return {"models": out}


@router.get("/version")
async def version() -> dict[str, str]:
    return {"version": OLLAMA_API_VERSION, "slmnode": __version__}
