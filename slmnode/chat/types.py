"""The chat seam: one protocol-neutral request and one event stream shared by every wire format.

Every wire protocol (OpenAI chat completions, OpenAI Responses, Anthropic Messages, Ollama ``/api/chat``)
translates its request into a :class:`Conversation` and renders the :data:`ChatEvent` stream (or the
:class:`ChatResult`) back into its own shape. Nothing below this seam knows about a wire format; nothing
above it knows about a model's template, tool-call syntax or thinking tags.

```
wire request ──adapter──▶ Conversation ──chat.formats: render──▶ prompt + lazy grammar ──▶ engine
wire response ◀─adapter── ChatEvent / ChatResult ◀──chat.formats: OutputParser── engine text
```

Event order in a stream: any mix of :class:`TextDelta`, :class:`ReasoningDelta` and :class:`ToolCallDelta`,
then exactly one :class:`Finished`. A tool call's first delta carries ``id`` and ``name`` (and maybe the first
``arguments`` piece); later deltas of the same ``index`` carry only ``arguments`` pieces; calls are numbered
from 0 in order and never interleave (a new index, or a text/reasoning delta, means the previous call is
complete). Concatenated ``arguments`` pieces of one call are its JSON text, valid against its schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from slmnode.engine.protocol import GenerationParams, Usage

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call; ``parameters`` is a JSON schema (an object schema)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def as_openai(self) -> dict[str, Any]:
        """The ``{"type": "function", "function": {...}}`` shape chat templates expect in ``tools``."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text of an object, as OpenAI sends it


@dataclass(frozen=True)
class Message:
    """One turn. Assistant turns may carry ``reasoning`` and ``tool_calls``; tool turns name the call they answer."""

    role: Role
    content: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # role "tool": the call this result answers
    name: str | None = None  # role "tool": the function's name (filled from the call when the wire omits it)


@dataclass(frozen=True)
class ToolChoice:
    """``auto``: text or calls; ``none``: text only; ``required``: at least one call; ``function``: that one."""

    mode: Literal["auto", "none", "required", "function"] = "auto"
    name: str | None = None  # mode "function"


@dataclass(frozen=True)
class Reasoning:
    """Thinking controls. ``enabled`` None: the model's default. ``budget_tokens``: thinking is closed after
    that many tokens so the answer keeps room (None: no budget beyond max_tokens)."""

    enabled: bool | None = None
    budget_tokens: int | None = None


@dataclass
class Conversation:
    """A chat request, whatever protocol it came in."""

    messages: list[Message]
    params: GenerationParams  # sampling, max_tokens, stop, json_schema / json_object (applies to the answer)
    model: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True
    reasoning: Reasoning = field(default_factory=Reasoning)
    template_kwargs: dict[str, Any] = field(default_factory=dict)  # chat_template_kwargs, passed to Jinja
    stream: bool = False


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    arguments: str = ""
    id: str | None = None  # set on a call's first delta only
    name: str | None = None  # set on a call's first delta only


@dataclass(frozen=True)
class ChatResult:
    content: str
    reasoning: str
    tool_calls: list[ToolCall]
    finish_reason: FinishReason
    usage: Usage
    model: str = ""
    stop_sequence: str | None = None  # the request's stop string that ended the answer, if one did


@dataclass(frozen=True)
class Finished:
    result: ChatResult


ChatEvent = TextDelta | ReasoningDelta | ToolCallDelta | Finished


class OutputParser(Protocol):
    """Turns a model's raw output, piece by piece, into chat events (a fresh parser per request).

    ``feed`` returns the events the text so far makes certain, holding back only what could still be the
    start of a marker; ``finish`` flushes the rest (a call left malformed becomes text: nothing is lost).
    Neither returns :class:`Finished`: the chat path adds it with the usage.
    """

    def feed(self, text: str) -> list[ChatEvent]: ...
    def finish(self) -> list[ChatEvent]: ...
