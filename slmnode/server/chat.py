"""The chat path every wire protocol shares: a :class:`Conversation` in, chat events or a result out.

Adapters (OpenAI chat, Responses, Anthropic Messages, Ollama) translate their request into a Conversation, call
:func:`open_chat` (streaming) or :func:`run_chat`, and render :mod:`slmnode.chat.types` events in their own
shape. Admission and request errors (unknown model, queue full, context too long, bad schema) raise from
:func:`open_chat` before any event, so a streaming request still gets a proper error status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from slmnode.chat.prepare import prepare
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
from slmnode.engine.client import Done, Token
from slmnode.errors import EngineError
from slmnode.server.models import Lease, ServedModel
from slmnode.server.service import Node, PrimedEvents, primed


@dataclass
class ChatStream:
    model: ServedModel
    lease: Lease
    events: AsyncIterator[ChatEvent]
    engine_events: PrimedEvents

    async def aclose(self) -> None:
        """Stop the job and release the lease (also when ``events`` was never iterated)."""
        await self.engine_events.aclose()


class _Collector:
    """Accumulates events into the final :class:`ChatResult`."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[list[str]] = []  # [id, name, arguments]

    def add(self, ev: ChatEvent) -> None:
        if isinstance(ev, TextDelta):
            self.text.append(ev.text)
        elif isinstance(ev, ReasoningDelta):
            self.reasoning.append(ev.text)
        elif isinstance(ev, ToolCallDelta):
            if ev.index >= len(self.calls):
                self.calls.append([ev.id or "", ev.name or "", ""])
            self.calls[ev.index][2] += ev.arguments

    def tool_calls(self) -> list[ToolCall]:
        return [ToolCall(id=i, name=n, arguments=a or "{}") for i, n, a in self.calls]


async def open_chat(node: Node, conv: Conversation, keep_alive: float | None | str = "unset") -> ChatStream:
    """Admit and start ``conv``; the returned events end with one :class:`Finished`.

    ``keep_alive``: Ollama's per-request keep-alive for the model ("unset": the node's setting)."""
    model = node.models.resolve(conv.model)
    prep = prepare(model.info, conv, node.settings.chat_format)
    lease = await node.models.acquire(model.name, keep_alive)
    evs = await primed(node, lease, prep.prompt, prep.params)

    async def events() -> AsyncIterator[ChatEvent]:
        acc = _Collector()
        try:
            async for ev in evs:
                if isinstance(ev, Token):
                    for out in prep.parser.feed(ev.text):
                        acc.add(out)
                        yield out
                elif isinstance(ev, Done):
                    for out in prep.parser.finish():
                        acc.add(out)
                        yield out
                    calls = acc.tool_calls()
                    finish = ev.finish_reason
                    if calls and finish == "stop":
                        finish = "tool_calls"
                    if finish not in ("stop", "length", "tool_calls"):
                        finish = "stop"
                    matched = ev.stop if ev.stop in conv.params.stop else None  # not the template's own stops
                    yield Finished(ChatResult("".join(acc.text), "".join(acc.reasoning), calls,
                                              finish, ev.usage, model.name, matched))  # type: ignore[arg-type]
                    return
        finally:
            await evs.aclose()
        raise EngineError("generation ended without a result")

    return ChatStream(model, lease, events(), evs)


async def finish_chat(chat: ChatStream) -> ChatResult:
    """Consume an opened chat to its result (releasing its lease whatever happens)."""
    async with aclosing(chat.events) as events:  # type: ignore[type-var]
        async for ev in events:
            if isinstance(ev, Finished):
                return ev.result
    raise EngineError("generation ended without a result")


async def run_chat(node: Node, conv: Conversation) -> ChatResult:
    """Run ``conv`` to the end (the engine sends text in few events: ``stream=False``)."""
    conv.stream = False
    return await finish_chat(await open_chat(node, conv))
