"""What both APIs share: the served model, turning a chat into an engine job, collecting results."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from slmnode.catalog.model_info import ModelInfo
from slmnode.config import Settings
from slmnode.engine.chat_format import render_chat
from slmnode.engine.client import Done, Engine, Event, Started, Token
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.engine.tools import ToolCall, call_schema, forced_tools, function_defs, parse_tool_call
from slmnode.errors import ModelNotFound, RequestError
from slmnode.server.metrics import Metrics


@dataclass
class ServedModel:
    name: str
    path: str
    info: ModelInfo
    sha256: str = ""
    source: str = ""
    added_at: float = field(default_factory=time.time)


@dataclass
class Node:
    """Everything a request handler needs; lives in ``app.state.node``."""

    engine: Engine
    model: ServedModel
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    started_at: float = field(default_factory=time.time)

    def resolve_model(self, requested: str | None) -> ServedModel:
        names = {self.model.name, f"{self.model.name}:latest", "default", "embedded", ""}
        if requested is None or requested in names or requested.removesuffix(":latest") == self.model.name:
            return self.model
        raise ModelNotFound(
            f"model '{requested}' is not served by this node; it serves '{self.model.name}' "
            "(see GET /v1/models)", param="model")


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
    params = params.model_copy(update={"stop": list(dict.fromkeys([*params.stop, *rendered.stop]))})
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


async def events(node: Node, prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
    """The engine's events for one job, with metrics recorded."""
    node.metrics.queue_depth.set(node.engine.queue_depth + 1)
    async for ev in node.engine.generate(prompt, params):
        if isinstance(ev, Started):
            node.metrics.queue_depth.set(node.engine.queue_depth)
        elif isinstance(ev, Done):
            node.metrics.observe_usage(ev.usage)
        yield ev


async def collect(node: Node, prompt: str, params: GenerationParams) -> tuple[str, str, Usage]:
    parts: list[str] = []
    async for ev in events(node, prompt, params):
        if isinstance(ev, Token):
            parts.append(ev.text)
        elif isinstance(ev, Done):
            return "".join(parts), ev.finish_reason, ev.usage
    raise RequestError("generation ended without a result")


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


async def primed(node: Node, prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
    """Start a job and wait for its first event before any response byte is sent.

    Request errors (context too long, bad schema) arrive before ``started``, so a streaming
    request still gets a proper 4xx status instead of an error inside a 200 stream.
    """
    it = events(node, prompt, params)
    first = await it.__anext__()

    async def rest() -> AsyncIterator[Event]:
        try:
            yield first
            async for ev in it:
                yield ev
        finally:
            await it.aclose()

    return rest()
