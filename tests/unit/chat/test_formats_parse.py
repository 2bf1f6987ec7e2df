"""Canned native outputs per family parse to the expected content, reasoning and tool calls; streamed in
1-3 character pieces they give exactly the same; thinking never reaches the content; broken calls are text."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

import pytest

from slmnode.chat.formats import FormatSpec, OutputParser, collect, detect
from slmnode.chat.formats.parser import Collected
from slmnode.chat.types import ChatEvent, ReasoningDelta, TextDelta, ToolCallDelta
from tests.unit.chat.cases import BROKEN_JSON, CASES, MALFORMED, TOOLS, Case, template


def _spec(tmpl: str, arch: str = "") -> FormatSpec:
    return detect(template(tmpl) if tmpl else None, arch)


def _run(case_tmpl: str, text: str, sizes: Sequence[int] | None, *, arch: str = "", thinking_open: bool = False,
         stream_arguments: bool = True) -> tuple[Collected, list[ChatEvent]]:
    parser = OutputParser(_spec(case_tmpl, arch), TOOLS, thinking_open=thinking_open,
                          stream_arguments=stream_arguments)
    events: list[ChatEvent] = []
    if sizes is None:
        events += parser.feed(text)
    else:
        at = 0
        for n in itertools.cycle(sizes):
            if at >= len(text):
                break
            events += parser.feed(text[at:at + n])
            at += n
    events += parser.finish()
    return collect(events), events


def _calls(got: Collected) -> list[tuple[str, dict[str, object]]]:
    return [(c.name, json.loads(c.arguments)) for c in got.tool_calls]


PIECES = [None, (1,), (2,), (3,), (1, 3, 2)]


@pytest.mark.parametrize("sizes", PIECES, ids=["whole", "by1", "by2", "by3", "by132"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_canned_output_parses(case: Case, sizes: Sequence[int] | None) -> None:
    got, events = _run(case.template, case.text, sizes, arch=case.architecture, thinking_open=case.thinking_open)
    assert got.content == case.content
    assert got.reasoning == case.reasoning
    assert _calls(got) == case.calls
    # thinking never leaks into the content
    assert "<think>" not in got.content and "</think>" not in got.content
    if case.reasoning:
        assert case.reasoning not in got.content
    # each call: first delta carries id and name, indices in order, ids distinct
    firsts = [e for e in events if isinstance(e, ToolCallDelta) and e.id is not None]
    assert [e.index for e in firsts] == list(range(len(case.calls)))
    assert all(e.name and e.id and e.id.startswith("call_") for e in firsts)
    assert len({e.id for e in firsts}) == len(firsts)


STREAMABLE = [c for c in CASES if c.calls and len(c.text) > 40 and "<|python_tag|>" not in c.text
              and not ("<|tool_call_start|>" in c.text and len(c.calls) == 1)]


@pytest.mark.parametrize("case", STREAMABLE, ids=lambda c: c.id)
def test_arguments_stream_before_the_answer_ends(case: Case) -> None:
    """The first call's first delta goes out before the answer is over (pythonic calls go out per call, so
    single-call LFM2 and ``<|python_tag|>`` answers are not in this table)."""
    parser = OutputParser(_spec(case.template, case.architecture), TOOLS, thinking_open=case.thinking_open)
    first_at = None
    for i, ch in enumerate(case.text):
        if any(isinstance(e, ToolCallDelta) for e in parser.feed(ch)):
            first_at = i
            break
    assert first_at is not None and first_at < len(case.text) - 2


@pytest.mark.parametrize("sizes", [None, (1,), (2, 3)], ids=["whole", "by1", "by23"])
@pytest.mark.parametrize("name,tmpl,text", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_call_stays_text(name: str, tmpl: str, text: str, sizes: Sequence[int] | None) -> None:
    for stream_arguments in (True, False):
        got, _ = _run(tmpl, text, sizes, stream_arguments=stream_arguments)
        assert got.tool_calls == []
        assert got.content == text.strip()


@pytest.mark.parametrize("sizes", [None, (1,)], ids=["whole", "by1"])
@pytest.mark.parametrize("name,tmpl,text", BROKEN_JSON, ids=[m[0] for m in BROKEN_JSON])
def test_broken_arguments_are_text_when_not_streamed(name: str, tmpl: str, text: str,
                                                     sizes: Sequence[int] | None) -> None:
    got, _ = _run(tmpl, text, sizes, stream_arguments=False)
    assert got.tool_calls == []
    assert got.content == text.strip()


def test_text_is_not_held_back_beyond_a_possible_marker() -> None:
    """Plain text streams out piece by piece: only a tail that could open a call waits."""
    parser = OutputParser(_spec("Qwen-Qwen3-0.6B"), TOOLS)
    assert parser.feed("Hello") == [TextDelta("Hello")]
    assert parser.feed(" there <tool_") == [TextDelta(" there")]
    assert parser.feed("box> done") == [TextDelta(" <tool_box> done")]
    assert parser.finish() == []


def test_unclosed_thinking_is_all_reasoning() -> None:
    """An answer cut inside thinking (budget spent) gives reasoning and no content."""
    parser = OutputParser(_spec("Qwen3.5-4B"), TOOLS, thinking_open=True)
    events = parser.feed("Let me think about <tool") + parser.finish()
    assert all(isinstance(e, ReasoningDelta) for e in events)
    assert collect(events).reasoning == "Let me think about <tool"


def test_no_tools_no_call_parsing() -> None:
    text = '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}\n</tool_call>'
    parser = OutputParser(_spec("Qwen-Qwen3-0.6B"), [])
    got = collect(parser.feed(text) + parser.finish())
    assert got.tool_calls == [] and got.content == text


def test_think_only_at_the_start() -> None:
    parser = OutputParser(_spec("Qwen-Qwen3-0.6B"), TOOLS)
    got = collect(parser.feed("Use <think> tags.</think> ok") + parser.finish())
    assert got.content == "Use <think> tags.</think> ok" and got.reasoning == ""
