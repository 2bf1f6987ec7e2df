"""Call readers: one per call syntax, fed the model's text after a call opener (see :mod:`.spec`). This
module holds the protocol and the JSON-object reader; :mod:`.tagged` the XML, pythonic and Mistral ones.

A reader turns the call block into :class:`ToolCallDelta` events and tells the driver (:mod:`.parser`) when
the block ends (``done``, with the text after it) or that it is not a call after all (``failed``, with the
text after the opener, which the driver reads again as text: a malformed call is never lost).

With ``stream`` on, a call's first delta goes out as soon as its name is known and argument pieces follow
as they arrive; a call is *committed* once a delta is out and can no longer fall back to text (the lazy
grammar keeps it well-formed). With ``stream`` off, each call is released whole once it is complete.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from slmnode.chat.types import ChatEvent, ToolCallDelta, ToolSpec

WS = " \t\r\n"


@dataclass
class Step:
    events: list[ChatEvent] = field(default_factory=list)
    state: Literal["more", "done", "failed"] = "more"
    rest: str = ""  # done: the text after the block; failed: the text after the opener


class Calls:
    """Call numbering, ids and the tools a call may name (shared by every reader of one answer)."""

    def __init__(self, tools: Sequence[ToolSpec], stream: bool) -> None:
        self.tools = {t.name: t for t in tools}
        self.stream = stream
        self.index = 0

    def known(self, name: str) -> bool:
        return name in self.tools

    def open(self, name: str, arguments: str = "") -> ToolCallDelta:
        delta = ToolCallDelta(index=self.index, id=f"call_{secrets.token_hex(12)}", name=name, arguments=arguments)
        self.index += 1
        return delta

    def more(self, piece: str) -> ToolCallDelta:
        return ToolCallDelta(index=self.index - 1, arguments=piece)


def is_prefix(text: str, *words: str) -> bool:
    """``text`` is a proper start of one of ``words`` (so more text may complete it)."""
    return any(len(text) < len(w) and w.startswith(text) for w in words)


class Reader:
    """Base: keeps the raw text (for a fallback to text) and the events not yet released."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.buf = ""  # text not consumed yet
        self.raw = ""  # everything fed since the opener
        self.committed = False  # a delta of this block went out
        self._held: list[ChatEvent] = []

    def emit(self, event: ToolCallDelta, out: list[ChatEvent]) -> None:
        self._held.append(event)
        if self.calls.stream:
            self.release(out)

    def release(self, out: list[ChatEvent]) -> None:
        if self._held:
            out.extend(self._held)
            self._held.clear()
            self.committed = True

    def drop(self) -> None:
        """Forget the held deltas of an incomplete call (renumbering it)."""
        if self._held:
            self.calls.index -= 1
            self._held.clear()

    def fail(self, out: list[ChatEvent], rest_from: int) -> Step:
        """Not (or no longer) a call: before any commitment the whole block is text again, else what is left."""
        self.drop()
        if not self.committed:
            return Step(out, "failed", self.raw)
        return Step(out, "done", self.buf[rest_from:])

    def feed(self, text: str) -> Step:
        self.buf += text
        self.raw += text
        return self.step(final=False)

    def finish(self) -> Step:
        return self.step(final=True)

    def step(self, final: bool) -> Step:
        raise NotImplementedError


class JsonScan:
    """Finds where one JSON object/array ends, character by character (strings and escapes respected)."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_str = False
        self.esc = False

    def char(self, c: str) -> bool:
        """Feed one character; True when it closes the outermost value."""
        if self.in_str:
            if self.esc:
                self.esc = False
            elif c == "\\":
                self.esc = True
            elif c == '"':
                self.in_str = False
            return False
        if c == '"':
            self.in_str = True
        elif c in "{[":
            self.depth += 1
        elif c in "}]":
            self.depth -= 1
            return self.depth == 0
        return False


_HEAD = re.compile(r'\{\s*(?:"type"\s*:\s*"function"\s*,\s*)?"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*'
                   r'"(?:arguments|parameters)"\s*:\s*\{')
_NOT_CALL = re.compile(r'\{\s*(?:[^\s"]|"(?:[^"\\]|\\.)*"\s*[^\s:])')


def call_of(obj: Any) -> tuple[str, dict[str, Any]] | None:
    """(name, arguments) of a call object in any of the usual shapes, else None."""
    if not isinstance(obj, dict):
        return None
    fn = obj.get("function")
    if isinstance(fn, dict):
        obj = fn
    name = obj.get("name")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    if not isinstance(name, str) or not isinstance(args, dict):
        return None
    return name, args


class _Object:
    """One JSON call object, streamed: its arguments go out as they arrive once the name is known."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.text = ""
        self.scan = JsonScan()
        self.args_start: int | None = None
        self.args_end: int | None = None
        self.sent = 0
        self.head_tried = True

    def feed(self, chunk: str, out: list[ChatEvent]) -> tuple[int, Literal["more", "done", "invalid"]]:
        start = len(self.text)
        self.text += chunk
        if self.args_start is None and self.head_tried:
            self._try_head(out)
        if self.args_start is None and _NOT_CALL.match(self.text):
            return len(chunk), "invalid"
        for i in range(start, len(self.text)):
            closed = self.scan.char(self.text[i])
            if self.args_start is not None and self.args_end is None and i > self.args_start and self.scan.depth == 1:
                self.args_end = i + 1
            if closed:
                used = i + 1 - start
                self.text = self.text[: i + 1]
                self._stream(out)
                return used, self._complete(out)
        self._stream(out)
        return len(chunk), "more"

    def _try_head(self, out: list[ChatEvent]) -> None:
        m = _HEAD.match(self.text)
        if m is None:
            self.head_tried = len(self.text) < 400
            return
        name = json.loads(f'"{m.group(1)}"')
        self.head_tried = False
        if not self.reader.calls.known(name):
            return
        self.args_start = self.sent = m.end() - 1
        self.reader.emit(self.reader.calls.open(name), out)

    def _stream(self, out: list[ChatEvent]) -> None:
        if self.args_start is None:
            return
        upto = self.args_end if self.args_end is not None else len(self.text)
        if upto > self.sent:
            self.reader.emit(self.reader.calls.more(self.text[self.sent:upto]), out)
            self.sent = upto

    def _complete(self, out: list[ChatEvent]) -> Literal["done", "invalid"]:
        try:
            call = call_of(json.loads(self.text))
        except ValueError:
            call = None
        if self.args_start is not None:
            if call is None and not self.reader.committed:
                return "invalid"  # buffered and broken: back to text
            self.reader.release(out)
            return "done"
        if call is None or not self.reader.calls.known(call[0]):
            return "invalid"
        self.reader.emit(self.reader.calls.open(call[0], json.dumps(call[1], ensure_ascii=False)), out)
        self.reader.release(out)
        return "done"


class JsonCallsReader(Reader):
    """JSON call objects after an opener: one (``single``), several, or a JSON list of them; then ``closer``."""

    def __init__(self, calls: Calls, *, prefix: str = "", closer: str = "", single: bool = False) -> None:
        super().__init__(calls)
        self.closer = closer
        self.single = single
        self.pos = 0
        self.in_list = False
        self.count = 0
        self.obj: _Object | None = None
        self.obj_at = 0
        self.buf = prefix

    def step(self, final: bool) -> Step:
        out: list[ChatEvent] = []
        buf = self.buf
        while True:
            if self.obj is not None:
                used, state = self.obj.feed(buf[self.pos:], out)
                self.pos += used
                if state == "more":
                    if not final:
                        return Step(out)
                    if self.obj.args_start is not None and self.committed:
                        return Step(out, "done", "")  # cut off inside a streamed call: it ends here
                    return self.fail(out, self.obj_at)
                if state == "invalid":
                    return self.fail(out, self.obj_at)
                self.obj = None
                self.count += 1
                if self.single and not self.in_list and not self.closer:
                    return Step(out, "done", buf[self.pos:])
                continue
            while self.pos < len(buf) and buf[self.pos] in WS:
                self.pos += 1
            rest = buf[self.pos:]
            if not rest:
                if not final:
                    return Step(out)
                return Step(out, "done", "") if self.count else self.fail(out, self.pos)
            c = rest[0]
            if c == "[" and not self.in_list and self.count == 0:
                self.in_list = True
                self.pos += 1
            elif c == "{" and (self.count == 0 or self.in_list or not self.single):
                self.obj = _Object(self)
                self.obj_at = self.pos
            elif c == "," and self.count and (self.in_list or not self.single):
                self.pos += 1
            elif c == "]" and self.in_list:
                self.in_list = False
                self.pos += 1
                if not self.closer:
                    return Step(out, "done", buf[self.pos:])
            elif self.closer and rest.startswith(self.closer) and self.count and not self.in_list:
                return Step(out, "done", rest[len(self.closer):])
            elif self.closer and is_prefix(rest, self.closer) and not final:
                return Step(out)
            elif self.count:
                return Step(out, "done", rest)  # no closer: the block ends at the first non-call text
            else:
                return self.fail(out, self.pos)


def schema_types(schema: Any) -> set[str]:
    if not isinstance(schema, dict):
        return set()
    t = schema.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return {x for x in t if isinstance(x, str)}
    out: set[str] = set()
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            out |= schema_types(sub)
    if not out and isinstance(schema.get("enum"), list) and all(isinstance(v, str) for v in schema["enum"]):
        out = {"string"}
    return out


def _json_type_ok(value: Any, types: set[str]) -> bool:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
             type(None): "null"}
    kind = names.get(type(value), "")
    return kind in types or (kind == "integer" and "number" in types)


def xml_value(raw: str, schema: Any) -> Any:
    """A ``<parameter>`` value: JSON when the schema says it is not (only) a string, else the raw text."""
    types = schema_types(schema)
    if types == {"string"}:
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if not types or _json_type_ok(value, types - {"string"}):
        return value
    return raw
