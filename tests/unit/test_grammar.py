"""Numeric-bound grammars: every value the grammar admits is in range, and in-range integers are admitted."""

from __future__ import annotations

import re

import pytest

from slmnode.engine.grammar import bounded_number_rule, int_range, schema_to_gbnf
from slmnode.errors import RequestError


def _to_regex(gbnf: str) -> re.Pattern[str]:
    """Translate the small GBNF subset these rules use ("lit", [a-b], (), |, ?, space) to a regex."""
    out, i = [], 0
    gbnf = gbnf.replace(" space", "")
    while i < len(gbnf):
        c = gbnf[i]
        if c == '"':
            j = gbnf.index('"', i + 1)
            out.append(re.escape(gbnf[i + 1 : j]))
            i = j + 1
        elif c == "[":
            j = gbnf.index("]", i)
            out.append(gbnf[i : j + 1])
            i = j + 1
        elif c in "()|?":
            out.append(c)
            i += 1
        else:
            i += 1
    return re.compile("(?:" + "".join(out) + r")\Z")


@pytest.mark.parametrize("lo,hi", [(0, 0), (0, 9), (1, 31), (18, 99), (7, 1234), (-40, 60), (-999, -10), (-5, 5), (100, 100)])
def test_int_range_accepts_exactly_the_range(lo: int, hi: int) -> None:
    rx = _to_regex(int_range(lo, hi))
    for v in range(min(lo, 0) - 50, max(hi, 0) + 150):
        assert bool(rx.match(str(v))) == (lo <= v <= hi), v
    assert not rx.match("007") and not rx.match("-0")


def test_open_ranges() -> None:
    rx = _to_regex(int_range(5, None))
    assert rx.match("5") and rx.match("123456789") and not rx.match("4") and not rx.match("-1")
    rx = _to_regex(int_range(None, 3))
    assert rx.match("-77") and rx.match("3") and not rx.match("4")


@pytest.mark.parametrize("schema", [
    {"type": "number", "minimum": 0, "maximum": 1},
    {"type": "number", "minimum": -40, "maximum": 60},
    {"type": "number", "minimum": 0.2, "maximum": 0.8},
    {"type": "number", "minimum": 1.5, "maximum": 10.25},
    {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
])
def test_number_rule_only_admits_in_range_values(schema: dict) -> None:
    rx = _to_regex(bounded_number_rule(schema))
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    admitted = 0
    for whole in range(-60, 80):
        for frac in ("", ".0", ".5", ".25", ".999"):
            for sign in ("", "-"):
                text = f"{sign}{abs(whole)}{frac}"
                if rx.match(text):
                    admitted += 1
                    v = float(text)
                    assert lo <= v <= hi, text
                    if "exclusiveMinimum" in schema:
                        assert lo < v < hi
    assert admitted > 0


def test_schema_grammar_uses_bounds_and_parses_in_llama_cpp() -> None:
    from llama_cpp.llama_grammar import LlamaGrammar

    gbnf = schema_to_gbnf({"type": "object", "properties": {"age": {"type": "integer", "minimum": 18, "maximum": 99}},
                           "required": ["age"]})
    assert "[1-9]" in gbnf or '"1"' in gbnf
    LlamaGrammar.from_string(gbnf, verbose=False)  # raises if llama.cpp rejects it


def test_empty_range_is_a_request_error() -> None:
    with pytest.raises(RequestError):
        int_range(5, 3)


@pytest.mark.parametrize("schema", [{"type": "object", "properties": {"s": {"type": "string", "maxLength": 5}}},
                                    {"type": "object"}])
def test_strings_exclude_raw_control_characters(schema: dict) -> None:
    """llama-cpp-python's port admits raw newlines in strings (invalid JSON); ours must not."""
    char_rule = next(line for line in schema_to_gbnf(schema).splitlines() if line.startswith("char ::="))
    assert r"\x00-\x1F" in char_rule and r"\x7F" in char_rule
