"""What both APIs share: the served model, turning a chat into an engine job, collecting results."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from slmnode.catalog.model_info import ModelInfo
from slmnode.config import Settings
from slmnode.engine.chat_format import render_chat
from slmnode.engine.client import Done, Event, Started, Token
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.engine.tools import (
    ToolCall,
    call_schema,
    forced_tools,
    function_defs,
    parse_tool_call,
)
from slmnode.errors import EngineError, RequestError
from slmnode.server.metrics import Metrics
from slmnode.server.models import Lease, ModelManager, ServedModel

log = logging.getLogger(__name__)


class ChatRouter(Protocol):
    """Decides where a chat request runs (this node or a cloud upstream): chat completions (``chat``),
    Anthropic Messages and Responses (``wire``, with the adapter's local path)."""

    async def chat(self, node: Node, body: Any, request: Any) -> Any: ...
    async def wire(self, node: Node, protocol: Any, body: Any, conv: Any, request: Any, local: Any) -> Any: ...
    def model_entries(self) -> list[dict[str, Any]]: ...


class Service(Protocol):
    """Something that runs beside the server (watchdog, governor...)."""

    async def start(self, node: Node) -> None: ...
    async def stop(self) -> None: ...


@dataclass
class Node:
    """Everything a request handler needs; lives in ``app.state.node``."""

    models: ModelManager
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    started_at: float = field(default_factory=time.time)
    startup_done: bool = False  # the default model's first load has finished (either way)
    health_extras: list[Callable[[], dict[str, Any]]] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)  # started and stopped with the app
    router: ChatRouter | None = None  # None: every chat request runs locally
    api_keys: dict[str, str] = field(default_factory=dict)  # accepted bearer key -> its name (besides settings.api_key)

    @property
    def default(self) -> ServedModel:
        return self.models.default


@dataclass
class ChatJob:
    prompt: str
    params: GenerationParams
    fns: list[dict[str, Any]]
    forced: bool


@dataclass
class Outcome:
    text: str
    finish_reason: str
    usage: Usage
    tool_calls: list[ToolCall]


def chat_job(info: ModelInfo, messages: list[dict[str, Any]], params: GenerationParams,
             tools: list[dict[str, Any]] | None = None, tool_choice: Any = None,
             chat_format: str = "auto") -> ChatJob:
    fns = function_defs(tools)
    if tool_choice == "none":
        fns = []
    forced = forced_tools(fns, tool_choice if tool_choice is not None else "auto")
    rendered = render_chat(info, messages, fns or None, chat_format)
    params = params.model_copy(update={"stop": list(dict.fromkeys([*params.stop, *rendered.stop])),
                                       "shared_prefix_chars": rendered.shared_prefix_chars})
    if forced:
        params = params.model_copy(update={"json_schema": call_schema(forced), "json_object": False})
    return ChatJob(rendered.prompt, params, fns, bool(forced))


def outcome(job_fns: list[dict[str, Any]], text: str, finish_reason: str, usage: Usage) -> Outcome:
    calls: list[ToolCall] = []
    if job_fns and (call := parse_tool_call(text, job_fns)) is not None:
        calls = [call]
        if finish_reason == "stop":
            finish_reason = "tool_calls"
    return Outcome(text, finish_reason, usage, calls)


async def events(node: Node, lease: Lease, prompt: str, params: GenerationParams) -> AsyncGenerator[Event, None]:
    """The engine's events for one job, with metrics recorded."""
    async for ev in lease.engine.generate(prompt, params):
        if isinstance(ev, Started):
            node.metrics.queue_depth.set(node.models.queue_depth)
        elif isinstance(ev, Done):
            node.metrics.observe_usage(ev.usage)
        yield ev


async def collect(node: Node, lease: Lease, prompt: str, params: GenerationParams) -> tuple[str, str, Usage]:
    """Run a job to the end and release the lease (text arrives in few events: ``stream=False``)."""
    parts: list[str] = []
    try:
        async for ev in events(node, lease, prompt, params.model_copy(update={"stream": False})):
            if isinstance(ev, Token):
                parts.append(ev.text)
            elif isinstance(ev, Done):
                return "".join(parts), ev.finish_reason, ev.usage
    finally:
        lease.release()
    raise EngineError("the engine ended the generation without a result; retry, and see the node's log")


def generation_params(given: dict[str, Any], prefix: str = "") -> GenerationParams:
    """Sampling settings from a request (None = default); out of range is the client's error (400), not a 500."""
    try:
        return GenerationParams(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = prefix + ".".join(str(p) for p in first.get("loc", ()))
        raise RequestError(f"{where}: {first.get('msg')}", param=where or None) from exc


def stream_fault(where: str, exc: Exception) -> str:
    """Log an unexpected error inside a response that has already started; the text to send the client."""
    log.error("unexpected error while streaming %s", where, exc_info=exc)
    return f"internal error ({type(exc).__name__}); the node's log has the details"


def timings(usage: Usage) -> dict[str, Any]:
    """llama-server's ``timings`` object (extra field; clients ignore it)."""
    return {
        "prompt_n": usage.prompt_tokens - usage.cached_tokens,
        "prompt_ms": round(usage.prompt_ms, 3),
        "prompt_per_second": round(usage.prompt_tps, 3),
        "predicted_n": usage.completion_tokens,
        "predicted_ms": round(usage.generation_ms, 3),
        "predicted_per_second": round(usage.generation_tps, 3),
        "cache_n": usage.cached_tokens,
    }


class PrimedEvents:
    """A started job's events (the first already received). Iterate once; :meth:`aclose` stops the job and
    releases the lease, whether or not the events were ever iterated (a client that hangs up before the
    response starts never iterates them: pass ``aclose`` as the response's background task)."""

    def __init__(self, first: Event, it: AsyncGenerator[Event, None], lease: Lease) -> None:
        self._first, self._it, self._lease = first, it, lease

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        try:
            yield self._first
            async for ev in self._it:
                yield ev
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        try:
            await self._it.aclose()
        finally:
            self._lease.release()


async def primed(node: Node, lease: Lease, prompt: str, params: GenerationParams) -> PrimedEvents:
    """Start a job and wait for its first event before any response byte is sent.

    Request errors (context too long, bad schema) arrive before ``started``, so a streaming
    request still gets a proper 4xx status instead of an error inside a 200 stream. The lease is
    released when the stream ends, fails to start, or is closed unread.
    """
    it = events(node, lease, prompt, params)
    try:
        first = await it.__anext__()
    except BaseException:
        lease.release()
        raise
    return PrimedEvents(first, it, lease)


def event_stream(body: AsyncIterator[str], events: PrimedEvents | Any, media_type: str,
                 headers: dict[str, str] | None = None) -> StreamingResponse:
    """A streamed response whose job is stopped and lease released when it ends, even if it never started."""
    return StreamingResponse(body, media_type=media_type, headers=headers, background=BackgroundTask(events.aclose))
