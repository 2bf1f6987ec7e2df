"""Call readers for the non-JSON syntaxes: Qwen's XML calls, pythonic calls (LFM2, Llama's ``<|python_tag|>``)
and Mistral's ``name[ARGS]{...}``. The protocol (feed/finish → :class:`Step`) is in :mod:`.readers`."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from slmnode.chat.formats import pythonic
from slmnode.chat.formats.readers import (
    WS,
    Calls,
    JsonCallsReader,
    JsonScan,
    Reader,
    Step,
    is_prefix,
    xml_value,
)
from slmnode.chat.types import ChatEvent

_FUNC = re.compile(r"\s*<function=([^>\n]+)>\n?")
_PARAM = re.compile(r"\s*<parameter=([^>\n]+)>\n?")


class XmlCallReader(Reader):
    """Qwen 3.5 / Qwen3-Coder: ``<function=f>`` then ``<parameter=x>\\nvalue\\n</parameter>`` … ``</function>``,
    then ``</tool_call>``. Each parameter goes out as a JSON piece when its closing tag arrives."""

    def __init__(self, calls: Calls, closer: str) -> None:
        super().__init__(calls)
        self.closer = closer
        self.state: Literal["func", "params", "close"] = "func"
        self.pos = 0
        self.params = 0
        self.schema: dict[str, Any] = {}

    def step(self, final: bool) -> Step:
        out: list[ChatEvent] = []
        while True:
            rest = self.buf[self.pos:]
            if self.state == "func":
                m = _FUNC.match(rest)
                if m is None:
                    if not final and re.fullmatch(r"\s*(<function=[^>\n]*)?", rest) or (
                            not final and is_prefix(rest.lstrip(WS), "<function=")):
                        return Step(out)
                    return self.fail(out, 0)
                name = m.group(1).strip()
                if not self.calls.known(name):
                    return self.fail(out, 0)
                self.schema = (self.calls.tools[name].parameters or {}).get("properties") or {}
                self.emit(self.calls.open(name), out)
                self.pos += m.end()
                self.state = "params"
            elif self.state == "params":
                stripped = rest.lstrip(WS)
                if stripped.startswith("</function>"):
                    self.emit(self.calls.more("}" if self.params else "{}"), out)
                    self.release(out)
                    self.pos += len(rest) - len(stripped) + len("</function>")
                    self.state = "close"
                    continue
                m = _PARAM.match(rest)
                end = rest.find("</parameter>", m.end()) if m else -1
                if m is None or end < 0:
                    if final:
                        return self._cut(out)
                    if (m is not None or not stripped or is_prefix(stripped, "</function>", "<parameter=")
                            or re.fullmatch(r"<parameter=[^>\n]*", stripped)):
                        return Step(out)
                    return self._cut(out) if self.committed else self.fail(out, 0)
                raw = rest[m.end():end]
                raw = raw[:-1] if raw.endswith("\n") else raw
                key = m.group(1).strip()
                value = xml_value(raw, self.schema.get(key))
                piece = ("{" if not self.params else ", ") + json.dumps(key) + ": " + json.dumps(value, ensure_ascii=False)
                self.emit(self.calls.more(piece), out)
                self.params += 1
                self.pos += end + len("</parameter>")
            else:
                stripped = rest.lstrip(WS)
                if stripped.startswith(self.closer):
                    return Step(out, "done", stripped[len(self.closer):])
                if not final and (not stripped or is_prefix(stripped, self.closer)):
                    return Step(out)
                return Step(out, "done", stripped)

    def _cut(self, out: list[ChatEvent]) -> Step:
        """The answer ended (or broke) inside a call already sent: close it with the parameters that arrived;
        what follows them is text again. Before anything was sent, the whole block is text."""
        if not self.committed:
            return self.fail(out, 0)
        self.emit(self.calls.more("}" if self.params else "{}"), out)
        return Step(out, "done", self.buf[self.pos:])


_PY_NAME = re.compile(r"\s*([A-Za-z_][\w.]*)\s*\(")


class PythonicListReader(Reader):
    """LFM2: ``[f(a=1), g(b="x")]`` then ``closer``. Each call goes out whole once its ``)`` arrives."""

    def __init__(self, calls: Calls, closer: str, *, bracket: bool = True, strip_call_suffix: bool = False) -> None:
        super().__init__(calls)
        self.closer = closer
        self.bracket = bracket
        self.strip_call_suffix = strip_call_suffix
        self.pos = 0
        self.opened = False
        self.count = 0

    def step(self, final: bool) -> Step:
        out: list[ChatEvent] = []
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in WS + ",":
                self.pos += 1
            rest = self.buf[self.pos:]
            if not rest:
                if final:
                    return Step(out, "done", "") if self.count else self.fail(out, self.pos)
                return Step(out)
            if rest[0] == "[" and not self.opened and self.count == 0:
                self.opened = True
                self.pos += 1
                continue
            if rest[0] == "]" and self.opened:
                self.opened = False
                self.pos += 1
                continue
            if self.closer and rest.startswith(self.closer) and self.count:
                return Step(out, "done", rest[len(self.closer):])
            if self.closer and self.count and is_prefix(rest, self.closer) and not final:
                return Step(out)
            m = _PY_NAME.match(rest)
            if m is None:
                if not final and re.fullmatch(r"[A-Za-z_][\w.]*\s*", rest):
                    return Step(out)
                return Step(out, "done", rest) if self.count else self.fail(out, self.pos)
            end = pythonic.call_end(rest, m.end() - 1)
            if end is None:
                if final:
                    return self.fail(out, self.pos)
                return Step(out)
            try:
                name, args = pythonic.parse_call(rest[:end])
            except ValueError:
                return self.fail(out, self.pos)
            if self.strip_call_suffix:
                name = name.removesuffix(".call")
            if not self.calls.known(name):
                return self.fail(out, self.pos)
            self.emit(self.calls.open(name, pythonic.to_json(args)), out)
            self.release(out)
            self.count += 1
            self.pos += end
            if not self.bracket and not self.closer:
                return Step(out, "done", self.buf[self.pos:])


_MISTRAL_HEAD = re.compile(r"\s*([^\[\]\s{]+)\s*(?:\[CALL_ID\][^\[]*)?\[ARGS\]\s*")


class MistralArgsReader(Reader):
    """Devstral / Mistral Small 3.2: ``name[ARGS]{...}`` (``[CALL_ID]id`` optional); the object is streamed."""

    def __init__(self, calls: Calls) -> None:
        super().__init__(calls)
        self.start: int | None = None
        self.scan = JsonScan()
        self.sent = 0
        self.pos = 0

    def step(self, final: bool) -> Step:
        out: list[ChatEvent] = []
        if self.start is None:
            m = _MISTRAL_HEAD.match(self.buf)
            if m is None or m.end() == len(self.buf):
                if not final and len(self.buf) < 200 and "{" not in self.buf:
                    return Step(out)
                return self.fail(out, 0)
            name = m.group(1)
            if not self.calls.known(name) or self.buf[m.end()] != "{":
                return self.fail(out, 0)
            self.emit(self.calls.open(name), out)
            self.start = self.sent = self.pos = m.end()
        for i in range(self.pos, len(self.buf)):
            if self.scan.char(self.buf[i]):
                obj = self.buf[self.start: i + 1]
                if not self.committed and not isinstance(_loads(obj), dict):
                    return self.fail(out, 0)
                self.emit(self.calls.more(self.buf[self.sent: i + 1]), out)
                self.release(out)
                return Step(out, "done", self.buf[i + 1:])
        self.pos = len(self.buf)
        if final:
            return self.fail(out, 0) if not self.committed else Step(out, "done", "")
        if len(self.buf) > self.sent:
            self.emit(self.calls.more(self.buf[self.sent:]), out)
            self.sent = len(self.buf)
        return Step(out)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


class PythonTagReader(Reader):
    """Llama 3.x after ``<|python_tag|>``: a JSON call object, ``f.call(x="1")``, or raw code for a
    ``python``/``code_interpreter`` tool (its ``code`` argument)."""

    def __init__(self, calls: Calls) -> None:
        super().__init__(calls)
        self.inner: Reader | None = None
        self.code = False

    def step(self, final: bool) -> Step:
        if self.inner is None and not self.code:
            head = self.buf.lstrip(WS)
            m = _PY_NAME.match(head)
            if not head or (re.fullmatch(r"[A-Za-z_][\w.]*", head) and not final):
                return Step() if not final else self.fail([], 0)
            if head[0] == "{":
                self.inner = JsonCallsReader(self.calls, single=True)
            elif m is not None and self.calls.known(m.group(1).removesuffix(".call")):
                self.inner = PythonicListReader(self.calls, "", bracket=False, strip_call_suffix=True)
            elif self._code_tool() is not None:
                self.code = True
            else:
                return self.fail([], 0)
            if self.inner is not None:
                pending, self.buf = self.buf, ""
                return self._wrap(self.inner.feed(pending), final)
        if self.code:
            return self._code(final)
        assert self.inner is not None
        pending, self.buf = self.buf, ""
        return self._wrap(self.inner.feed(pending) if pending else Step(), final)

    def _wrap(self, step: Step, final: bool) -> Step:
        assert self.inner is not None
        if final and step.state == "more":
            later = self.inner.finish()
            step = Step(step.events + later.events, later.state, later.rest)
        self.committed = self.inner.committed
        if step.state == "failed":
            return Step(step.events, "failed", self.raw)
        return step

    def _code_tool(self) -> str | None:
        return next((n for n in ("python", "code_interpreter", "ipython") if self.calls.known(n)), None)

    def _code(self, final: bool) -> Step:
        tool = self._code_tool()
        if tool is None:
            return self.fail([], 0)
        if not final:
            return Step()
        out: list[ChatEvent] = []
        self.emit(self.calls.open(tool, json.dumps({"code": self.buf.strip()}, ensure_ascii=False)), out)
        self.release(out)
        return Step(out, "done", "")
