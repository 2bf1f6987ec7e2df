"""GBNF text helpers shared by both processes (pure Python: no llama_cpp, so the HTTP side may import it).

A grammar built on the HTTP side (a tool-call grammar in a model's own syntax, :mod:`slmnode.chat.formats`)
may contain JSON-schema pieces it cannot convert there: the JSON-schema→GBNF converter lives in llama_cpp,
which only the worker imports. Such a piece is a placeholder rule ``NAME ::= @json-schema(N)``, ``N``
indexing ``GenerationParams.grammar_schemas``; the worker expands each one (:func:`expand`) with its converter,
the converted rules prefixed with ``NAME-`` so that several schemas' helper rules never clash.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_RULE = re.compile(r"^([a-zA-Z0-9-]+)\s*::=\s*(.*)$")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|\{[^}]*\}|[a-zA-Z0-9-]+|.', re.S)
_PLACEHOLDER = re.compile(r"^([a-zA-Z0-9-]+)\s*::=\s*@json-schema\((\d+)\)\s*$")


def prefixed(grammar: str, prefix: str) -> tuple[list[str], str]:
    """The rules of ``grammar`` with every rule name prefixed (so several grammars can be merged); returns
    (rule lines, the new name of ``root``)."""
    rules: list[tuple[str, str]] = []
    for line in grammar.splitlines():
        m = _RULE.match(line.strip())
        if m:
            rules.append((m.group(1), m.group(2)))
        elif line.strip() and rules:
            rules[-1] = (rules[-1][0], rules[-1][1] + " " + line.strip())
    names = {name for name, _ in rules}

    def rename(body: str) -> str:
        return "".join(prefix + tok if tok in names else tok for tok in _TOKEN.findall(body))

    return [f"{prefix}{name} ::= {rename(body)}" for name, body in rules], f"{prefix}root"


class SchemaSlots:
    """A ``schema_to_gbnf`` stand-in for the HTTP side: records each schema and returns a placeholder grammar."""

    def __init__(self) -> None:
        self.schemas: list[dict[str, Any]] = []

    def __call__(self, schema: dict[str, Any]) -> str:
        self.schemas.append(schema)
        return f"root ::= @json-schema({len(self.schemas) - 1})"


def expand(grammar: str, schemas: list[dict[str, Any]], schema_to_gbnf: Callable[[dict[str, Any]], str]) -> str:
    """``grammar`` with every ``NAME ::= @json-schema(N)`` rule replaced by the converted schema."""
    out: list[str] = []
    for line in grammar.splitlines():
        m = _PLACEHOLDER.match(line.strip())
        if m is None:
            out.append(line)
            continue
        name, index = m.group(1), int(m.group(2))
        if index >= len(schemas):
            raise ValueError(f"grammar names schema {index}, but only {len(schemas)} were sent")
        lines, root = prefixed(schema_to_gbnf(schemas[index]), f"{name}-")
        out += lines
        out.append(f"{name} ::= {root}")
    return "\n".join(out)
