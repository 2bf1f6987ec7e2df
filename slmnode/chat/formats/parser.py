"""The incremental output parser: model text in, :data:`ChatEvent` out (reasoning, text, tool calls).

``feed(piece)`` returns the events the piece completes; ``finish()`` flushes the rest (the caller adds
:class:`Finished`). Only the shortest tail that could still become a marker (``<think>``, ``</think>``, a
call opener such as ``<tool_`` or ``{"na``) is held back between pieces, so the stream lags the model by
at most a marker's length; whole answers and 1-character pieces give the same events' concatenation.

Rules, as llama.cpp's chat parsers apply them:
- ``<think>`` opens thinking only at the very start of the answer (or the prompt opened it already:
  ``thinking_open``); everything up to ``</think>`` is :class:`ReasoningDelta`. For Qwen 3.5 a
  ``<tool_call>`` also ends thinking. An answer that ends inside thinking is all reasoning (never content).
- Whitespace at the edges of thinking, of the content and around calls is dropped.
- Calls are parsed only when the request has tools; text before a call stays content; a block that turns
  out not to be a call (unknown function, broken syntax) is text again, so nothing is lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from slmnode.chat.formats.readers import Calls, JsonCallsReader, Reader
from slmnode.chat.formats.spec import FormatSpec
from slmnode.chat.formats.tagged import MistralArgsReader, PythonicListReader, PythonTagReader, XmlCallReader
from slmnode.chat.types import ChatEvent, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, ToolSpec
from slmnode.chat.types import OutputParser as ParserProtocol

_WS = " \t\r\n"
_JSON_OPEN = re.compile(r'\{\s*"(?:name|type|function)"')
_JSON_KEYS = ('"name"', '"type"', '"function"')


def _hold_at(buf: str, markers: Iterable[str]) -> int:
    """Index where a tail of ``buf`` that could be the start of a marker begins (len(buf): none)."""
    best = len(buf)
    for m in markers:
        for n in range(min(len(m) - 1, len(buf)), 0, -1):
            if buf.endswith(m[:n]):
                best = min(best, len(buf) - n)
                break
    return best


def _json_hold_at(buf: str) -> int:
    k = buf.rfind("{")
    if k < 0 or len(buf) - k > 64:
        return len(buf)
    tail = buf[k + 1:].lstrip(_WS)
    if not tail or any(key.startswith(tail) and len(tail) < len(key) for key in _JSON_KEYS):
        return k
    return len(buf)


def _is_prefix(text: str, word: str) -> bool:
    return len(text) < len(word) and word.startswith(text)


class OutputParser:
    """Splits one answer of a model of format ``spec`` into reasoning, text and tool-call events.

    ``tools``: the request's functions (no tools: no call parsing). ``thinking_open``: the prompt already
    opened a thinking block (see :attr:`Rendered.thinking_open`). ``stream_arguments``: send argument pieces
    as they arrive (else each call goes out whole when complete; only then can a broken call turn into text
    after its name was seen).
    """

    def __init__(self, spec: FormatSpec, tools: Sequence[ToolSpec] = (), *, thinking_open: bool = False,
                 stream_arguments: bool = True) -> None:
        self.spec = spec
        self.calls = Calls(tools, stream_arguments)
        self._parse_calls = bool(tools)
        self._mode: Literal["text", "reasoning", "call"] = "reasoning" if thinking_open else "text"
        self._buf = ""
        self._think_allowed = not thinking_open  # <think> is recognised only at the start
        self._at_start = True  # content boundary: leading whitespace is dropped
        self._ws = ""  # trailing whitespace of the content, held until more content follows
        self._ws_before = ""
        self._r_at_start = True
        self._rws = ""
        self._reader: Reader | None = None
        self._opener = ""
        self._json_openers = spec.json_objects and spec.family not in ("hermes", "phi4", "mistral")
        self._literal = tuple(o for o in spec.openers if not o.startswith("{"))
        self._done = False

    # -- public -------------------------------------------------------------------------------------------

    def feed(self, piece: str) -> list[ChatEvent]:
        if self._done:
            raise RuntimeError("feed() after finish()")
        self._buf += piece
        return self._run(final=False)

    def finish(self) -> list[ChatEvent]:
        if self._done:
            return []
        out = self._run(final=True)
        self._done = True
        return out

    # -- driver -------------------------------------------------------------------------------------------

    def _run(self, final: bool) -> list[ChatEvent]:
        out: list[ChatEvent] = []
        while True:
            if self._mode == "call":
                if not self._call(final, out):
                    break
            elif self._mode == "reasoning":
                if not self._reasoning(final, out):
                    break
            elif not self._text_mode(final, out):
                break
        return out

    def _call(self, final: bool, out: list[ChatEvent]) -> bool:
        assert self._reader is not None
        pending, self._buf = self._buf, ""
        step = self._reader.feed(pending) if pending else None
        if step is None or (final and step.state == "more"):
            later = self._reader.finish() if final else None
            if later is None:
                return False
            step = later if step is None else type(later)(step.events + later.events, later.state, later.rest)
        out.extend(step.events)
        if step.state == "more":
            return False
        self._reader = None
        self._mode = "text"
        if step.state == "failed":
            self._ws = self._ws_before
            self._text(self._opener, out)  # not a call: the opener is text, and what follows is read again
        else:
            self._at_start, self._ws = True, ""
        self._buf = step.rest + self._buf
        return True

    def _reasoning(self, final: bool, out: list[ChatEvent]) -> bool:
        spec = self.spec
        if self._r_at_start:
            self._buf = self._buf.lstrip(_WS)
            if self._buf.startswith(spec.think_open):  # the prompt opened it and the model did too
                self._buf = self._buf[len(spec.think_open):]
            elif not final and (not self._buf or _is_prefix(self._buf, spec.think_open)):
                return False
        enders = [spec.think_close]
        if spec.family == "qwen-xml" and self._parse_calls:
            enders += list(self._literal)
        found = [(i, m) for m in enders if (i := self._buf.find(m)) >= 0]
        if found:
            at, marker = min(found)
            self._reason(self._buf[:at], out)
            self._buf = self._buf[at + len(marker):] if marker == spec.think_close else self._buf[at:]
            self._mode, self._at_start, self._rws = "text", True, ""
            return True
        hold = len(self._buf) if final else _hold_at(self._buf, enders)
        self._reason(self._buf[:hold], out)
        self._buf = self._buf[hold:]
        return False

    def _text_mode(self, final: bool, out: list[ChatEvent]) -> bool:
        spec = self.spec
        if self._at_start:
            self._buf = self._buf.lstrip(_WS)
        if self._think_allowed:
            if self._buf.startswith(spec.think_open):
                self._buf = self._buf[len(spec.think_open):]
                self._mode, self._think_allowed, self._r_at_start = "reasoning", False, True
                return True
            if not final and (not self._buf or _is_prefix(self._buf, spec.think_open)):
                return False
            self._think_allowed = False
        opener = self._find_opener(self._buf) if self._parse_calls else None
        if opener is not None:
            at, text = opener
            self._text(self._buf[:at], out)
            self._ws_before, self._ws = self._ws, ""  # whitespace between text and a call is dropped
            self._opener = text
            self._reader = self._new_reader(text)
            self._buf = self._buf[at + len(text):]
            self._mode = "call"
            return True
        hold = len(self._buf) if final or not self._parse_calls else self._hold(self._buf)
        self._text(self._buf[:hold], out)
        self._buf = self._buf[hold:]
        if final and self._ws:
            out.append(TextDelta(self._ws))
            self._ws = ""
        return False

    # -- markers ------------------------------------------------------------------------------------------

    def _find_opener(self, buf: str) -> tuple[int, str] | None:
        found = [(i, m) for m in self._literal if (i := buf.find(m)) >= 0]
        if self._json_openers and (j := _JSON_OPEN.search(buf)) is not None:
            found.append((j.start(), buf[j.start(): j.start() + 1]))  # the object itself goes to the reader
        return min(found) if found else None

    def _hold(self, buf: str) -> int:
        at = _hold_at(buf, self._literal)
        if self._json_openers:
            at = min(at, _json_hold_at(buf))
        return at

    def _new_reader(self, opener: str) -> Reader:
        family, calls = self.spec.family, self.calls
        if opener == "{":
            return JsonCallsReader(calls, prefix="{", single=True)
        if family == "qwen-xml":
            return XmlCallReader(calls, self.spec.closer)
        if family == "lfm2":
            return PythonicListReader(calls, self.spec.closer)
        if family == "mistral-args":
            return MistralArgsReader(calls)
        if family == "llama3":
            return PythonTagReader(calls)
        if opener == "```json":
            return JsonCallsReader(calls, closer="```", single=True)
        return JsonCallsReader(calls, closer=self.spec.closer)  # hermes, phi4, mistral

    # -- emitting -----------------------------------------------------------------------------------------

    def _text(self, s: str, out: list[ChatEvent]) -> None:
        if self._at_start:
            s = s.lstrip(_WS)
            if not s:
                return
            self._at_start = False
        body = s.rstrip(_WS)
        if body:
            out.append(TextDelta(self._ws + body))
            self._ws = ""
        self._ws += s[len(body):]

    def _reason(self, s: str, out: list[ChatEvent]) -> None:
        if self._r_at_start:
            s = s.lstrip(_WS)
            if not s:
                return
            self._r_at_start = False
        body = s.rstrip(_WS)
        if body:
            out.append(ReasoningDelta(self._rws + body))
            self._rws = ""
        self._rws += s[len(body):]


@dataclass
class Collected:
    """What a list of events adds up to (for non-streamed answers and for tests)."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


def collect(events: Iterable[ChatEvent]) -> Collected:
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, str]] = []
    for ev in events:
        if isinstance(ev, TextDelta):
            text.append(ev.text)
        elif isinstance(ev, ReasoningDelta):
            reasoning.append(ev.text)
        elif isinstance(ev, ToolCallDelta):
            if ev.index == len(calls):
                calls.append({"id": ev.id or "", "name": ev.name or "", "arguments": ""})
            elif ev.index != len(calls) - 1:
                raise ValueError(f"tool call delta for index {ev.index} out of order")
            calls[ev.index]["arguments"] += ev.arguments
    return Collected("".join(text), "".join(reasoning),
                     [ToolCall(c["id"], c["name"], c["arguments"]) for c in calls])


def new_parser(spec: FormatSpec, tools: Sequence[ToolSpec] = (), *, thinking_open: bool = False,
               stream_arguments: bool = True) -> ParserProtocol:
    """An :class:`OutputParser`, typed as the chat seam's parser protocol."""
    return OutputParser(spec, tools, thinking_open=thinking_open, stream_arguments=stream_arguments)


def parse_text(spec: FormatSpec, text: str, tools: Sequence[ToolSpec] = (), *,
               thinking_open: bool = False) -> Collected:
    """A whole answer at once (non-streamed requests): calls are released whole, so a broken one is text."""
    parser = OutputParser(spec, tools, thinking_open=thinking_open, stream_arguments=False)
    return collect([*parser.feed(text), *parser.finish()])
