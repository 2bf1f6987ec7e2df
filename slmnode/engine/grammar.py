"""JSON schema → GBNF grammar (worker side; imports llama_cpp).

Built on llama-cpp-python's ``SchemaConverter`` (a port of llama.cpp's json-schema-to-grammar),
extended with what it leaves as a TODO: ``minimum``/``maximum`` (and the exclusive forms) on
``integer`` and ``number``. Bounds are enforced by the grammar, never checked afterwards:
- integers: an exact decimal range grammar over [lo, hi];
- numbers: integer parts in range, with a fraction only where the whole value stays in range
  (a sound subset of the real interval; values below ceil(lo) or fractional negatives are not
  produced).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from llama_cpp import llama_grammar
from llama_cpp.llama_grammar import LlamaGrammar, SchemaConverter

from slmnode.engine.gbnf import expand
from slmnode.engine.protocol import GenerationParams
from slmnode.errors import RequestError

_MAX_DIGITS = 15
_JSON_CHAR = r'[^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
_BOUND_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _same_length(a: str, b: str) -> str:
    """Grammar for decimal strings of equal length between a and b (inclusive)."""
    if a == b:
        return f'"{a}"'
    if len(a) == 1:
        return f"[{a}-{b}]"
    if a[0] == b[0]:
        return f'"{a[0]}" ({_same_length(a[1:], b[1:])})'
    n = len(a) - 1
    parts = [f'"{a[0]}" ({_same_length(a[1:], "9" * n)})']
    if int(b[0]) - int(a[0]) > 1:
        parts.append(f"[{int(a[0]) + 1}-{int(b[0]) - 1}]" + " [0-9]" * n)
    parts.append(f'"{b[0]}" ({_same_length("0" * n, b[1:])})')
    return " | ".join(parts)


def uint_range(lo: int, hi: int | None) -> str:
    """Grammar for non-negative integers in [lo, hi] without leading zeros (hi None: unbounded)."""
    top = hi if hi is not None else 10**_MAX_DIGITS - 1
    if lo > top:
        raise RequestError(f"empty integer range [{lo}, {hi}] in schema", param="response_format")
    parts = []
    for digits in range(len(str(lo)), len(str(top)) + 1):
        a = max(lo, 10 ** (digits - 1) if digits > 1 else 0)
        b = min(top, 10**digits - 1)
        if a <= b:
            parts.append(f"({_same_length(str(a), str(b))})")
    return " | ".join(parts)


def int_range(lo: int | None, hi: int | None) -> str:
    """Grammar for integers in [lo, hi] (either side may be open)."""
    parts = []
    if lo is None or lo < 0:  # negative part: -m with m in [max(1,-hi), -lo]
        m_lo = max(1, -hi) if hi is not None else 1
        m_hi = -lo if lo is not None else None
        if m_hi is None or m_lo <= m_hi:
            parts.append(f'"-" ({uint_range(m_lo, m_hi)})')
    if hi is None or hi >= 0:
        parts.append(uint_range(max(0, lo) if lo is not None else 0, hi))
    if not parts:
        raise RequestError(f"empty integer range [{lo}, {hi}] in schema", param="response_format")
    return " | ".join(f"({p})" for p in parts)


def _bounds(schema: dict[str, Any], integer: bool) -> tuple[float | None, float | None, bool, bool]:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    lo_ex = hi_ex = False
    if isinstance(schema.get("exclusiveMinimum"), (int, float)) and not isinstance(schema.get("exclusiveMinimum"), bool):
        lo, lo_ex = schema["exclusiveMinimum"], True
    if isinstance(schema.get("exclusiveMaximum"), (int, float)) and not isinstance(schema.get("exclusiveMaximum"), bool):
        hi, hi_ex = schema["exclusiveMaximum"], True
    return lo, hi, lo_ex, hi_ex


def bounded_number_rule(schema: dict[str, Any]) -> str:
    integer = schema.get("type") == "integer"
    lo, hi, lo_ex, hi_ex = _bounds(schema, integer)
    ilo = None if lo is None else (math.floor(lo) + 1 if lo_ex and float(lo).is_integer() else math.ceil(lo))
    ihi = None if hi is None else (math.ceil(hi) - 1 if hi_ex and float(hi).is_integer() else math.floor(hi))
    if integer:
        return f"({int_range(ilo, ihi)}) space"
    frac = '"." [0-9]' + " [0-9]?" * 5
    alts = []
    # "k.ddd" lies in [k, k+1): safe for integer parts k >= max(ilo, 0) with k + 1 <= hi
    f_lo = max(ilo if ilo is not None else 0, 0)
    f_hi = None if hi is None else math.floor(hi) - 1
    if f_hi is None or f_lo <= f_hi:
        alts.append(f"({int_range(f_lo, f_hi)}) ({frac})")
    if ilo is not None and ihi is not None and ilo > ihi and lo is not None and hi is not None:
        # the interval holds no integer, e.g. [0.2, 0.8]: one-decimal values inside it
        tenths = [k for k in range(math.ceil(lo * 10), math.floor(hi * 10) + 1)
                  if (not lo_ex or k / 10 > lo) and (not hi_ex or k / 10 < hi)]
        if not tenths:
            raise RequestError(f"number range [{lo}, {hi}] is too narrow for a grammar", param="response_format")
        alts.append(" | ".join(f'"{k / 10:.1f}"' for k in tenths))
    else:
        alts.append(f"({int_range(ilo, ihi)})")
    return f"({' | '.join(alts)}) space"


class BoundedSchemaConverter(SchemaConverter):
    """``SchemaConverter`` that also enforces numeric bounds."""

    def visit(self, schema: dict[str, Any], name: str) -> str:
        if (
            isinstance(schema, dict)
            and schema.get("type") in ("integer", "number")
            and any(k in schema for k in _BOUND_KEYS)
            and not any(k in schema for k in ("enum", "const", "anyOf", "oneOf", "$ref"))
        ):
            rule_name = name + "-" if name in llama_grammar.RESERVED_NAMES else name or "root"
            return self._add_rule(rule_name, bounded_number_rule(schema))
        return super().visit(schema, name)


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    try:
        converter = BoundedSchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        resolved = converter.resolve_refs(schema, "input")
        converter.visit(resolved, "")
        if "char" in converter._rules:
            # llama-cpp-python's port admits raw control characters in strings ([^"\\]), which makes
            # invalid JSON; llama.cpp's own converter excludes them. Use llama.cpp's rule.
            converter._rules["char"] = _JSON_CHAR
        return converter.format_grammar()
    except (AssertionError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise RequestError(f"cannot build a grammar from this JSON schema: {exc}", param="response_format") from exc


@lru_cache(maxsize=64)
def _grammar_from_text(gbnf: str) -> LlamaGrammar:
    return LlamaGrammar.from_string(gbnf, verbose=False)


def grammar_for(json_schema: dict[str, Any] | None, json_object: bool) -> LlamaGrammar | None:
    """The grammar enforcing the request's output, or None for free text."""
    if json_schema is not None:
        gbnf = schema_to_gbnf(json_schema)
    elif json_object:
        gbnf = schema_to_gbnf({"type": "object"})
    else:
        return None
    try:
        return _grammar_from_text(gbnf)
    except (ValueError, RuntimeError) as exc:
        raise RequestError(f"grammar rejected by llama.cpp: {exc}", param="response_format") from exc




def grammar_text_for(json_schema: dict[str, Any] | None, json_object: bool) -> str | None:
    """The GBNF text enforcing the request's output (for a per-sequence grammar sampler), or None."""
    if json_schema is not None:
        return schema_to_gbnf(json_schema)
    if json_object:
        return schema_to_gbnf({"type": "object"})
    return None


def request_grammar(params: GenerationParams) -> str | None:
    """The GBNF for a request: its own grammar (placeholders expanded), else its JSON output constraint."""
    if params.grammar is not None:
        try:
            return expand(params.grammar, params.grammar_schemas, schema_to_gbnf)
        except ValueError as exc:
            raise RequestError(f"bad tool-call grammar: {exc}") from exc
    return grammar_text_for(params.json_schema, params.json_object)
