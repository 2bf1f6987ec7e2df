"""The router: where each /v1/chat/completions request runs, with fallbacks, and what it cost.
(/v1/messages and /v1/responses take the same way as their chat completions twin: :mod:`.wire`.)

    model "local" or a local model name ─▶ local (pinned)
    model "<upstream>" / "cloud"        ─▶ that upstream / the first one (pinned)
    model "auto" ─▶ X-Slmnode-Route header ▸ the API key's route ▸ classify (rules, optionally the local model)
    any cloud target + PII/secrets      ─▶ local (privacy = "local") or redacted copy (privacy = "redact")
    local queue full / too hot          ─▶ the default upstream (overflow_to_cloud, never with PII, not pinned)
    upstream fails (down, timeout, 429, 5xx, cut stream) ─▶ next upstream (circuit breakers) ▸ local

Every answer carries ``X-Slmnode-Route`` (``local`` or the upstream's name), ``X-Slmnode-Route-Reason``
and ``X-Slmnode-Task``; every request leaves one row in the ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from slmnode.chat.types import Conversation
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.errors import (
    QueueFull,
    RequestError,
    SlmnodeError,
    ThermalLimit,
    UpstreamError,
)
from slmnode.router.breaker import CircuitBreaker
from slmnode.router.classify import TASKS, Classification, classify, message_text
from slmnode.router.config import RouterConfig
from slmnode.router.ledger import Ledger, LedgerRow
from slmnode.router.privacy import redact_messages, scan_messages, summary
from slmnode.router.upstream import (
    StreamTally,
    UpstreamFailed,
    UpstreamRejected,
    complete,
    open_stream,
)
from slmnode.router.wire import LocalPath, Protocol, Tally, Wire, chat_request, chat_result
from slmnode.server.errors import error_response, openai_body
from slmnode.server.openai_api import ChatRequest, local_chat
from slmnode.server.service import Node, chat_job, collect

ROUTE_HEADER = "X-Slmnode-Route"
_ROUTE_NAMES = ("auto", "local", "cloud")


@dataclass(frozen=True)
class Decision:
    target: str           # "local" or an upstream's name
    reason: str
    task: str
    pinned: bool = False  # the client named the route: no overflow to another side
    private: str | None = None  # summary of PII found (never the data itself)
    redact: bool = False


def _header_safe(text: str) -> str:
    return re.sub(r"[^\x20-\x7e]", "?", text)[:300]


def _usage_only(item: str) -> bool:
    try:
        obj = json.loads(item)
    except ValueError:
        return False
    return isinstance(obj, dict) and not obj.get("choices") and "usage" in obj


def _estimate_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(message_text(m)) for m in messages) // 4 + 4 * len(messages)


class Router:
    def __init__(self, config: RouterConfig, ledger: Ledger | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.ledger = ledger or Ledger()
        self.client = client or httpx.AsyncClient()
        self.breakers = {u.name: CircuitBreaker(config.breaker_failures, config.breaker_cooldown)
                         for u in config.upstreams}
        self.key_names: dict[str, str] = {k: r.name for r in config.keys if (k := r.key())}
        self._key_routes: dict[str, str] = {r.name: r.route for r in config.keys}

    # -- what clients see ------------------------------------------------------------------------
    def model_entries(self) -> list[dict[str, Any]]:
        """``auto``, ``local`` and each upstream; nothing when no upstream is configured (all is local)."""
        if not self.config.upstreams:
            return []
        out = [{"id": "auto", "object": "model", "created": 0, "owned_by": "slmnode-router",
                "meta": {"route": "auto: local for simple tasks, cloud for hard ones"}},
               {"id": "local", "object": "model", "created": 0, "owned_by": "slmnode-router",
                "meta": {"route": "this node's default model"}}]
        for u in self.config.upstreams:
            out.append({"id": u.name, "object": "model", "created": 0, "owned_by": "slmnode-router",
                        "meta": {"route": "cloud", "upstream_model": u.model,
                                 "input_usd_per_mtok": u.input_usd_per_mtok,
                                 "output_usd_per_mtok": u.output_usd_per_mtok,
                                 "circuit": self.breakers[u.name].state.value}})
        return out

    def key_of(self, request: Request) -> str:
        """The name the ledger shows for the caller's API key (configured name, else a short hash)."""
        given = request.headers.get("authorization", "")
        token = given[7:].strip() if given.lower().startswith("bearer ") else ""
        token = token or request.headers.get("x-api-key", "").strip()  # Anthropic's clients
        if not token:
            return "-"
        return self.key_names.get(token) or "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:10]

    # -- deciding --------------------------------------------------------------------------------
    async def decide(self, node: Node, body: ChatRequest, request: Request, key: str) -> Decision:
        header = (request.headers.get(ROUTE_HEADER) or "").strip().lower()
        if header and header not in _ROUTE_NAMES:
            raise RequestError(f"{ROUTE_HEADER} must be local, cloud or auto, not {header!r}", param=ROUTE_HEADER)
        model = body.model
        first = self.config.upstreams[0].name if self.config.upstreams else None
        if model == "cloud" or (model and self.config.upstream(model)):
            target = model if model != "cloud" else first
            if target is None:
                raise RequestError("model 'cloud' needs an [[upstreams]] entry in the node's config file",
                                   param="model")
            d = Decision(target, f"pinned: model {model}", "pinned", pinned=True)
        elif model not in ("auto",):
            return Decision("local", f"pinned: model {model or 'default'}", "pinned", pinned=True)
        else:
            wish = header or self._key_routes.get(key, "auto")
            source = f"header {ROUTE_HEADER}: {header}" if header else f"API key {key} routes {wish}"
            if wish == "local":
                return Decision("local", source, "override")
            if wish != "auto":
                target = wish if wish != "cloud" else first
                if target is None:
                    return Decision("local", f"{source}, but no upstream is configured", "override")
                d = Decision(target, source, "override")
            else:
                c = classify(body.messages, tools=body.tools, max_tokens=body.max_tokens or body.max_completion_tokens,
                             response_format=body.response_format.model_dump() if body.response_format else None)
                if c.task == "unknown" and self.config.classifier == "model":
                    c = await self._model_classify(node, body) or c
                d = self._from_task(c, node, body, first)
                if d.target == "local":
                    return d
        return self._guard(d, body)

    def _from_task(self, c: Classification, node: Node, body: ChatRequest, first: str | None) -> Decision:
        cloud = c.cloud or (c.task == "unknown" and self.config.unknown_task == "cloud")
        reason = f"task {c.task} ({c.reason})"
        est = _estimate_tokens(body.messages)
        if not cloud and est > node.settings.ctx * 0.9 and first is not None:
            return Decision(first, f"prompt (~{est} tokens) too long for the local context {node.settings.ctx}", c.task)
        if cloud and first is None:
            return Decision("local", f"{reason}; no upstream configured", c.task)
        return Decision(first if cloud else "local", reason, c.task)  # type: ignore[arg-type]

    def _guard(self, d: Decision, body: ChatRequest) -> Decision:
        opaque = sorted({str(p.get("type")) for m in body.messages if isinstance(m.get("content"), list)
                         for p in m["content"] if isinstance(p, dict) and p.get("type") not in ("text", None)})
        if opaque:  # images/audio: the guard cannot read them, so they never leave
            return replace(d, target="local", pinned=True, private=f"unscannable {', '.join(opaque)}",
                           reason=f"unscannable content ({', '.join(opaque)}) stays local; wanted {d.target}: {d.reason}")
        findings = scan_messages(body.messages)
        if not findings:
            return d
        found = summary(findings)
        if self.config.privacy == "redact":
            return replace(d, reason=f"{d.reason}; redacted {found}", private=found, redact=True)
        return replace(d, target="local", reason=f"private data ({found}) stays local; wanted {d.target}: {d.reason}",
                       private=found, pinned=True)

    async def _model_classify(self, node: Node, body: ChatRequest) -> Classification | None:
        text = next((message_text(m) for m in reversed(body.messages) if m.get("role") == "user"), "")[:2000]
        prompt = [{"role": "user", "content": f"Which kind of task is this request? One of: {', '.join(TASKS)}.\n\n"
                                              f"Request: {text}"}]
        schema = {"type": "object", "properties": {"task": {"enum": list(TASKS)}}, "required": ["task"]}
        job = chat_job(node.default.info, prompt, GenerationParams(max_tokens=24, temperature=0, json_schema=schema),
                       chat_format=node.settings.chat_format)
        try:
            lease = await node.models.acquire(None)
            out, _, _ = await collect(node, lease, job.prompt, job.params)
            task = json.loads(out)["task"]
        except (SlmnodeError, ValueError, KeyError, TypeError):
            return None
        return Classification(task, "the local model classified it") if task in TASKS else None

    # -- answering -------------------------------------------------------------------------------
    async def chat(self, node: Node, body: ChatRequest, request: Request) -> Response:
        t0 = time.perf_counter()
        key = self.key_of(request)
        d = await self.decide(node, body, request, key)
        try:
            return await self._answer(node, body, d, key, t0)
        except SlmnodeError as exc:  # still say where it went and why
            headers = self._headers(d)
            if exc.status_code == 503:
                headers["Retry-After"] = str(exc.retry_after or 1)
            return JSONResponse(openai_body(exc.message, exc.error_type, exc.code, exc.param),
                                status_code=exc.status_code, headers=headers)

    async def wire(self, node: Node, protocol: Protocol, body: Any, conv: Conversation, request: Request,
                   local: LocalPath) -> Response:
        """A /v1/messages or /v1/responses request (``body``, as ``conv``): decided as its chat completions
        twin, answered by the adapter's ``local`` path or a cloud chat completion rendered in ``protocol``."""
        t0 = time.perf_counter()
        key = self.key_of(request)
        w = Wire(protocol, body, conv, local)
        chat = ChatRequest.model_validate(chat_request(conv))
        d = await self.decide(node, chat, request, key)
        try:
            return await self._answer(node, chat, d, key, t0, w)
        except SlmnodeError as exc:  # still say where it went and why, in the protocol's error shape
            headers = self._headers(d)
            if exc.status_code == 503:
                headers["Retry-After"] = str(exc.retry_after or 1)
            return error_response(request, exc.status_code, exc.message, exc.error_type, exc.code, exc.param,
                                  headers)

    async def _answer(self, node: Node, body: ChatRequest, d: Decision, key: str, t0: float,
                      wire: Wire | None = None) -> Response:
        if d.target == "local":
            try:
                return await self._local(node, body, d, key, t0, wire)
            except (QueueFull, ThermalLimit) as exc:
                first = self.config.upstreams[0].name if self.config.upstreams else None
                over = None
                if not d.pinned and self.config.overflow_to_cloud and first is not None:
                    over = self._guard(replace(d, target=first, reason=f"local {exc.code} -> cloud; was: {d.reason}"),
                                       body)
                if over is None or over.target == "local":  # pinned, not allowed, nowhere to go, or private
                    await self._record(d, key, body, "error", 0, 0, t0, 0.0, 0.0, wire)
                    raise
                d = over
        return await self._cloud(node, body, d, key, t0, wire)

    def _headers(self, d: Decision) -> dict[str, str]:
        return {ROUTE_HEADER: d.target, f"{ROUTE_HEADER}-Reason": _header_safe(d.reason), "X-Slmnode-Task": d.task}

    async def _record(self, d: Decision, key: str, body: ChatRequest, status: str, tin: int, tout: int,
                      t0: float, cost: float, reference: float, wire: Wire | None = None) -> None:
        up = self.config.upstream(d.target)
        if up is not None:
            model = up.model
        elif body.model and body.model not in _ROUTE_NAMES and self.config.upstream(body.model) is None:
            model = body.model  # a pinned local model
        else:
            model = "default"
        row = LedgerRow(route=d.target, reason=d.reason, task=d.task, model=model, status=status,
                        stream=wire.stream if wire is not None else body.stream, tokens_in=tin, tokens_out=tout, latency_s=time.perf_counter() - t0,
                        cost_usd=cost, reference_usd=reference, api_key=key)
        await asyncio.shield(asyncio.to_thread(self.ledger.record, row))

    async def _local(self, node: Node, body: ChatRequest, d: Decision, key: str, t0: float,
                     wire: Wire | None = None) -> Response:
        routed = body.model in _ROUTE_NAMES or self.config.upstream(body.model or "") is not None
        if wire is not None:
            answer = await wire.local(replace(wire.conv, model=None) if routed else wire.conv)

            async def tallied(t: Tally) -> None:  # the protocol's usage has no timings: wall time for energy
                await self._record(d, key, body, "ok" if t.done and not t.failed else "error", t.tokens_in,
                                   t.tokens_out, t0, self.config.local_cost(time.perf_counter() - t0),
                                   self.config.reference_cost(t.tokens_in, t.tokens_out), wire)

            return await wire.tap(answer, self._headers(d), tallied)
        local_body = body.model_copy(update={"model": None}) if routed else body  # keep a pinned local model

        async def done(usage: Usage | None, status: str) -> None:
            u = usage or Usage()
            seconds = (u.prompt_ms + u.generation_ms) / 1000
            await self._record(d, key, body, status, u.prompt_tokens, u.completion_tokens, t0,
                               self.config.local_cost(seconds),
                               self.config.reference_cost(u.prompt_tokens, u.completion_tokens))

        return await local_chat(node, local_body, on_done=done, headers=self._headers(d))

    async def _cloud(self, node: Node, body: ChatRequest, d: Decision, key: str, t0: float,
                     wire: Wire | None = None) -> Response:
        payload = body.model_dump(exclude_none=True)
        if d.redact:
            payload["messages"] = redact_messages(body.messages)
        order = [d.target] + [u.name for u in self.config.upstreams if u.name != d.target]
        failures: list[str] = []
        for name in order:
            up, breaker = self.config.upstream(name), self.breakers[name]
            assert up is not None
            if not breaker.allow():
                failures.append(f"{name}: circuit open")
                continue
            here = replace(d, target=name, reason=d.reason + (f"; after {'; '.join(failures)}" if failures else ""))
            try:
                if body.stream:
                    tally = StreamTally()
                    data = await open_stream(self.client, up, payload, tally)
                    breaker.success()
                    return StreamingResponse(self._proxy(data, tally, here, key, body, t0), headers=self._headers(here),
                                             media_type="text/event-stream")
                answer = await complete(self.client, up, payload)
            except UpstreamFailed as exc:
                breaker.failure()
                failures.append(exc.reason if exc.reason.startswith(name) else f"{name}: {exc.reason}")
                continue
            except UpstreamRejected as exc:
                breaker.success()
                await self._record(here, key, body, "error", 0, 0, t0, 0.0, 0.0, wire)
                if wire is not None:
                    return wire.rejected(exc.status, exc.body, self._headers(here))
                return JSONResponse(exc.body, status_code=exc.status, headers=self._headers(here))
            breaker.success()
            usage = answer.get("usage") or {}
            tin = int(usage.get("prompt_tokens") or _estimate_tokens(body.messages))
            tout = int(usage.get("completion_tokens") or len(json.dumps(answer["choices"][0])) // 4)
            await self._record(here, key, body, "ok", tin, tout, t0, up.cost(tin, tout),
                               self.config.reference_cost(tin, tout), wire)
            if wire is not None:
                return wire.render(chat_result(answer, up.model), self._headers(here))
            return JSONResponse(answer, headers=self._headers(here))
        failed = "; ".join(failures)
        if self.config.fallback_to_local and _estimate_tokens(body.messages) < node.settings.ctx * 0.9:
            back = replace(d, target="local", reason=f"{d.reason}; upstreams failed ({failed}) -> local")
            return await self._local(node, body, back, key, t0, wire)
        await self._record(d, key, body, "error", 0, 0, t0, 0.0, 0.0, wire)
        raise UpstreamError(f"no upstream could answer ({failed}) and the local fallback is "
                            f"{'off' if not self.config.fallback_to_local else 'too short for this prompt'}")

    async def _proxy(self, data: AsyncIterator[str], tally: StreamTally, d: Decision, key: str, body: ChatRequest,
                     t0: float) -> AsyncIterator[str]:
        want_usage = bool((body.stream_options or {}).get("include_usage"))
        status = "error"
        try:
            async for item in data:
                if item == "[DONE]":
                    status = "ok"
                    break
                if not want_usage and '"usage"' in item and _usage_only(item):
                    continue  # asked upstream for the ledger's sake; this client did not ask for it
                yield f"data: {item}\n\n"
        except UpstreamFailed as exc:
            self.breakers[d.target].failure()
            yield f"data: {json.dumps(openai_body(f'{exc}', 'server_error', 'upstream_stream_cut'))}\n\n"
        finally:
            tin = tally.tokens_in or _estimate_tokens(body.messages)
            tout = tally.tokens_out or tally.chars_out // 4
            up = self.config.upstream(d.target)
            await self._record(d, key, body, status, tin, tout, t0, up.cost(tin, tout) if up else 0.0,
                               self.config.reference_cost(tin, tout))
        yield "data: [DONE]\n\n"

    # -- a node service: started and stopped with the app ---------------------------------------
    async def start(self, node: Node) -> None:
        node.health_extras.append(lambda: {"ledger_writable": self.ledger.writable,
                                           "upstreams": {n: b.state.value for n, b in self.breakers.items()}})

    async def stop(self) -> None:
        await self.client.aclose()
        await asyncio.to_thread(self.ledger.close)
