"""Lazy call grammars: the canned native calls of each family are accepted, wrong ones are not, and what the
grammar admits parses back to the same calls."""

from __future__ import annotations

import json
import re

import pytest

from slmnode.chat.formats import (
    OutputParser,
    call_gbnf,
    call_schema_after_trigger,
    collect,
    grammar_triggers,
    lazy_trigger_patterns,
)
from slmnode.chat.formats.grammar import excluding
from slmnode.chat.formats.spec import spec_for
from slmnode.chat.types import ToolSpec
from slmnode.engine.grammar import schema_to_gbnf
from tests.unit.chat.cases import EMPTY, GET_TIME, SPECIAL, SPECIAL_OPT
from tests.unit.chat.gbnf import grammar

TOOLS = [SPECIAL, SPECIAL_OPT, GET_TIME]

ACCEPTED = {
    "qwen-xml": ["<tool_call>\n<function=special_function>\n<parameter=arg1>\n1\n</parameter>\n</function>\n</tool_call>",
                 "<tool_call>\n<function=get_time>\n<parameter=city>\nNew\nYork </x>\n</parameter>\n</function>\n"
                 "</tool_call>\n<tool_call>\n<function=special_function_with_opt>\n<parameter=arg1>\n1\n</parameter>\n"
                 "<parameter=arg2>\n2\n</parameter>\n</function>\n</tool_call>"],
    "hermes": ['<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}\n</tool_call>',
               '<tool_call>\n{"name": "get_time", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n'
               '{"name": "special_function", "arguments": {"arg1": 2}}\n</tool_call>'],
    "llama3": ['{"name": "special_function", "parameters": {"arg1": 1}}',
               '<|python_tag|>{"name": "get_time", "parameters": {"city": "Oslo"}}'],
    "mistral": ['[TOOL_CALLS][{"name": "special_function", "arguments": {"arg1": 1}, "id": "123456789"}]'],
    "mistral-args": ['[TOOL_CALLS]special_function[ARGS]{"arg1": 1}',
                     '[TOOL_CALLS]special_function[ARGS]{"arg1": 1}[TOOL_CALLS]get_time[ARGS]{"city": "Oslo"}'],
    "phi4": ['<|tool_call|>[{"name": "special_function", "arguments": {"arg1": 1}}, '
             '{"name": "get_time", "arguments": {"city": "Oslo"}}]<|/tool_call|>'],
    "lfm2": ["<|tool_call_start|>[special_function(arg1=1)]<|tool_call_end|>",
             '<|tool_call_start|>[get_time(city="Paris"), special_function_with_opt(arg1=1, arg2=2)]<|tool_call_end|>'],
    "gemma": ['{"name": "special_function", "arguments": {"arg1": 1}}',
              '```json\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n```'],
    "generic": ['{"name": "special_function", "arguments": {"arg1": 1}}'],
}

REJECTED = {
    "qwen-xml": ["<tool_call>\n<function=special_function>\n<parameter=arg1>\none\n</parameter>\n</function>\n</tool_call>",
                 "<tool_call>\n<function=nope>\n</function>\n</tool_call>",
                 "<tool_call>\n<function=get_time>\n</function>\n</tool_call>"],  # required city missing
    "hermes": ['<tool_call>\n{"name": "nope", "arguments": {"arg1": 1}}\n</tool_call>',
               '<tool_call>\n{"name": "special_function", "arguments": {"arg1": "1"}}\n</tool_call>'],
    "llama3": ['{"name": "special_function", "parameters": {}}'],
    "mistral": ['[TOOL_CALLS][{"name": "special_function", "arguments": {"arg1": 1}, "id": "12"}]'],
    "mistral-args": ['[TOOL_CALLS]get_time[ARGS]{"city": 5}'],
    "phi4": ['<|tool_call|>[]<|/tool_call|>'],
    "lfm2": ["<|tool_call_start|>[get_time(city=5)]<|tool_call_end|>",
             "<|tool_call_start|>[special_function()]<|tool_call_end|>"],
    "gemma": ['{"name": "get_time", "arguments": {"city": "Oslo", "extra": 1}} trailing'],
    "generic": ['{"name": "special_function"}'],
}


@pytest.mark.parametrize("family", sorted(ACCEPTED))
def test_grammar_accepts_native_calls_and_they_parse_back(family: str) -> None:
    spec = spec_for(family)  # type: ignore[arg-type]
    g = call_gbnf(spec, TOOLS, schema_to_gbnf)
    recognizer = grammar(g.gbnf)
    for text in ACCEPTED[family]:
        assert recognizer.accepts(text), text
        assert any(text.startswith(t) for t in g.triggers)
        parser = OutputParser(spec, TOOLS)
        got = collect(parser.feed(text) + parser.finish())
        assert got.content == "" and got.tool_calls, text
        for call in got.tool_calls:
            assert isinstance(json.loads(call.arguments), dict)


@pytest.mark.parametrize("family", sorted(REJECTED))
def test_grammar_rejects_calls_that_would_not_validate(family: str) -> None:
    g = call_gbnf(spec_for(family), TOOLS, schema_to_gbnf)  # type: ignore[arg-type]
    recognizer = grammar(g.gbnf)
    for text in REJECTED[family]:
        assert not recognizer.accepts(text), text


OPTIONAL = ToolSpec("opt2", "", {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}}})


@pytest.mark.parametrize("family,text,ok", [
    ("lfm2", "<|tool_call_start|>[empty_args()]<|tool_call_end|>", True),
    ("lfm2", "<|tool_call_start|>[opt2()]<|tool_call_end|>", True),
    ("lfm2", "<|tool_call_start|>[opt2(b=true)]<|tool_call_end|>", True),
    ("lfm2", "<|tool_call_start|>[opt2(a=1, b=false)]<|tool_call_end|>", True),
    ("lfm2", "<|tool_call_start|>[opt2(, b=true)]<|tool_call_end|>", False),
    ("lfm2", "<|tool_call_start|>[opt2(b=true, a=1)]<|tool_call_end|>", False),  # schema order
    ("qwen-xml", "<tool_call>\n<function=empty_args>\n</function>\n</tool_call>", True),
    ("qwen-xml", "<tool_call>\n<function=opt2>\n<parameter=b>\ntrue\n</parameter>\n</function>\n</tool_call>", True),
    ("qwen-xml", "<tool_call>\n<function=opt2>\n<parameter=b>\nyes\n</parameter>\n</function>\n</tool_call>", False),
])
def test_optional_and_empty_arguments(family: str, text: str, ok: bool) -> None:
    g = grammar(call_gbnf(spec_for(family), [EMPTY, OPTIONAL], schema_to_gbnf).gbnf)  # type: ignore[arg-type]
    assert g.accepts(text) is ok


def test_xml_string_values_cannot_contain_the_closing_tag() -> None:
    g = grammar("\n".join(excluding("free", "</parameter>")) + "\nroot ::= free\n")
    for ok in ["", "plain", "a </param b", "<</parameter", "x</parameterx", "\n\n<"]:
        assert g.accepts(ok), ok
    for bad in ["</parameter>", "a</parameter>b", "<</parameter>"]:
        assert not g.accepts(bad), bad


def test_json_schema_after_trigger() -> None:
    hermes = call_schema_after_trigger(spec_for("hermes"), [SPECIAL])
    assert hermes == {"type": "object", "properties": {"name": {"const": "special_function"},
                                                       "arguments": SPECIAL.parameters},
                      "required": ["name", "arguments"]}
    phi4 = call_schema_after_trigger(spec_for("phi4"), [SPECIAL, GET_TIME], parallel=False)
    assert phi4 is not None and phi4["type"] == "array" and phi4["maxItems"] == 1 and len(phi4["items"]["anyOf"]) == 2
    assert call_schema_after_trigger(spec_for("qwen-xml"), [SPECIAL]) is None  # not JSON: see call_gbnf


def test_triggers() -> None:
    assert grammar_triggers(spec_for("qwen-xml")) == ["<tool_call>"]
    assert grammar_triggers(spec_for("llama3")) == ["<|python_tag|>", '{"name"']
    assert grammar_triggers(spec_for("lfm2")) == ["<|tool_call_start|>"]
    assert grammar_triggers(spec_for("mistral-args")) == ["[TOOL_CALLS]"]


def _trigger_start(patterns: list[str], text: str) -> int | None:
    """Where llama.cpp's lazy sampler starts the grammar (llama_grammar_trigger_pattern::find), or None."""
    for p in patterns:
        m = re.fullmatch(p, text) if p.startswith("^") and p.endswith("$") else re.search(p, text)
        if m:
            return next((m.start(i) for i in range(1, (m.lastindex or 0) + 1) if m.group(i)), m.start())
    return None


CALL = '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call>'


@pytest.mark.parametrize("family,thinking_open,text,start", [
    ("hermes", False, "Sure. " + CALL, 6),
    ("hermes", False, "<think>a <tool_call> mention</think>\n" + CALL, 37),
    ("hermes", False, "<think>a <tool_call> mention, still thinking", None),
    ("hermes", True, "a <tool_call> mention</think>" + CALL, 29),
    ("hermes", True, "a <tool_call> mention, still thinking", None),
    ("llama3", True, 'maybe {"name": "x"}</think>{"name": "get_time", "parameters": {}}', 27),
    ("qwen-xml", True, "thinking\n<tool_call>\n<function=get_time>", 9),  # a call ends Qwen 3.5's thinking
])
def test_lazy_triggers_do_not_fire_inside_thinking(family: str, thinking_open: bool, text: str,
                                                   start: int | None) -> None:
    patterns = lazy_trigger_patterns(spec_for(family), thinking_open=thinking_open)  # type: ignore[arg-type]
    assert _trigger_start(patterns, text) == start
