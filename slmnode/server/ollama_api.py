"""Ollama-compatible routes: /api/chat, /api/generate, /api/tags, /api/show, /api/ps, /api/version.

Field names and units follow Ollama's API (durations in nanoseconds, NDJSON streaming on by
default, ``format`` = "json" or a JSON schema, sampling under ``options``).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from slmnode import __version__
from slmnode.engine.client import Done, Token
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.errors import RequestError, SlmnodeError
from slmnode.server.service import Node, ServedModel, chat_job, outcome, primed

router = APIRouter(prefix="/api", tags=["ollama"])
OLLAMA_API_VERSION = "0.12.6"  # the Ollama API level these routes follow


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


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
    params = GenerationParams(stop=o.stop or [], **{k: v for k, v in given.items() if v is not None})
    if req.format == "json":
        params = params.model_copy(update={"json_object": True})
    elif isinstance(req.format, dict):
        params = params.model_copy(update={"json_schema": req.format})
    elif req.format not in (None, ""):
        raise RequestError("format must be \"json\" or a JSON schema object")
    return params


def _durations(usage: Usage, total_ns: int) -> dict[str, Any]:
    return {
        "total_duration": total_ns, "load_duration": 0,
        "prompt_eval_count": usage.prompt_tokens, "prompt_eval_duration": int(usage.prompt_ms * 1e6),
        "eval_count": usage.completion_tokens, "eval_duration": int(usage.generation_ms * 1e6),
    }


def _ollama_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        if m.get("images"):
            raise RequestError("images are not supported by this model; send text only")
        m = dict(m)
        calls = m.get("tool_calls")
        if calls:
            m["tool_calls"] = [{"id": f"call_{i}", "type": "function", "function": {
                "name": (c.get("function") or {}).get("name"),
                "arguments": json.dumps((c.get("function") or {}).get("arguments", {}))}} for i, c in enumerate(calls)]
        if m.get("role") == "tool" and m.get("tool_name") and not m.get("name"):
            m["name"] = m["tool_name"]
        out.append(m)
    return out


async def _respond(node: Node, model: ServedModel, prompt: str, params: GenerationParams, stream: bool,
                   kind: str, fns: list[dict[str, Any]]) -> JSONResponse | StreamingResponse:
    t0 = time.perf_counter_ns()
    evs = await primed(node, prompt, params)

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
        return {**last, "done_reason": reason, **_durations(ev.usage, time.perf_counter_ns() - t0)}

    if not stream:
        parts: list[str] = []
        async for ev in evs:
            if isinstance(ev, Token):
                parts.append(ev.text)
            elif isinstance(ev, Done):
                return JSONResponse(final(ev, "".join(parts)))
        raise RequestError("generation ended without a result")

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

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/chat", response_model=None)
async def chat(body: ChatReq, request: Request) -> JSONResponse | StreamingResponse:
    node: Node = request.app.state.node
    model = node.resolve_model(body.model)
    if not body.messages:  # Ollama: an empty chat loads the model
        return JSONResponse({"model": model.name, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                             "done_reason": "load", "done": True})
    job = chat_job(model.info, _ollama_messages(body.messages), _params(body), body.tools, "auto",
                   node.settings.chat_format)
    return await _respond(node, model, job.prompt, job.params, body.stream, "chat", job.fns)


@router.post("/generate", response_model=None)
async def generate(body: GenerateReq, request: Request) -> JSONResponse | StreamingResponse:
    node: Node = request.app.state.node
    model = node.resolve_model(body.model)
    if not body.prompt:
        return JSONResponse({"model": model.name, "created_at": _now(), "response": "", "done": True, "done_reason": "load"})
    params = _params(body)
    if body.raw:
        prompt = body.prompt
    else:
        msgs = ([{"role": "system", "content": body.system}] if body.system else []) + [{"role": "user", "content": body.prompt}]
        job = chat_job(model.info, msgs, params, chat_format=node.settings.chat_format)
        prompt, params = job.prompt, job.params
    return await _respond(node, model, prompt, params, body.stream, "generate", [])


def _details(m: ServedModel) -> dict[str, Any]:
    return {"parent_model": "", "format": "gguf", "family": m.info.architecture, "families": [m.info.architecture],
            "parameter_size": m.info.parameter_size, "quantization_level": m.info.quant_type or "unknown"}


def _entry(m: ServedModel) -> dict[str, Any]:
    return {"name": m.name, "model": m.name, "modified_at": _iso(m.added_at), "size": m.info.size_bytes,
            "digest": m.sha256, "details": _details(m)}


@router.get("/tags")
async def tags(request: Request) -> dict[str, Any]:
    node: Node = request.app.state.node
    return {"models": [_entry(node.model)]}


@router.post("/show")
async def show(body: ShowReq, request: Request) -> dict[str, Any]:
    node: Node = request.app.state.node
    m = node.resolve_model(body.model or body.name)
    info = m.info
    arch = info.architecture
    model_info = {"general.architecture": arch, "general.parameter_count": info.parameter_count,
                  f"{arch}.context_length": info.context_length, f"{arch}.block_count": info.block_count,
                  f"{arch}.embedding_length": info.embedding_length, f"{arch}.attention.head_count": info.head_count,
                  f"{arch}.attention.head_count_kv": info.head_count_kv}
    return {"modelfile": f"FROM {m.path}\n", "parameters": f"num_ctx {node.engine.n_ctx}",
            "template": info.chat_template or "", "details": _details(m), "model_info": model_info,
            "capabilities": ["completion", "tools"], "modified_at": _iso(m.added_at)}


@router.get("/ps")
async def ps(request: Request) -> dict[str, Any]:
    node: Node = request.app.state.node
    loaded = node.engine.state.value == "ready"
    return {"models": [{**_entry(node.model), "expires_at": "2318-01-01T00:00:00Z", "size_vram": 0,
                        "context_length": node.engine.n_ctx}] if loaded else []}


@router.get("/version")
async def version() -> dict[str, str]:
    return {"version": OLLAMA_API_VERSION, "slmnode": __version__}
