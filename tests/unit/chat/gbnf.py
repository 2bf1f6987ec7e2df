"""A small GBNF recognizer for tests: does a grammar accept a whole string?

llama-cpp-python gives no way to run a grammar without a model, so the tests check the lazy call grammars
with this: it reads the GBNF subset llama.cpp's JSON-schema converter and :mod:`slmnode.chat.formats.grammar`
write (literals with escapes, character classes, rule references, groups, ``|``, ``?``, ``*``, ``+``,
``{m,n}``, ``.``) and matches by sets of end positions (fine for the short canned outputs of the tests).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cache

Node = tuple  # ("alt", [seq...]) | ("seq", [item...]) | ("lit", str) | ("cls", neg, ranges) | ("ref", name)
#              | ("rep", node, lo, hi) | ("any",)

_ESC = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "[": "[", "]": "]", "-": "-", "^": "^", "/": "/"}


def _escape(text: str, i: int) -> tuple[str, int]:
    c = text[i + 1]
    if c == "x":
        return chr(int(text[i + 2:i + 4], 16)), i + 4
    if c == "u":
        return chr(int(text[i + 2:i + 6], 16)), i + 6
    if c == "U":
        return chr(int(text[i + 2:i + 10], 16)), i + 10
    return _ESC[c], i + 2


class _Reader:
    def __init__(self, text: str) -> None:
        self.t = text
        self.i = 0

    def ws(self) -> None:
        while self.i < len(self.t) and (self.t[self.i] in " \t\n" or self.t[self.i] == "#"):
            if self.t[self.i] == "#":
                while self.i < len(self.t) and self.t[self.i] != "\n":
                    self.i += 1
            else:
                self.i += 1

    def alt(self) -> Node:
        seqs = [self.seq()]
        while self.i < len(self.t) and self.t[self.i] == "|":
            self.i += 1
            seqs.append(self.seq())
        return ("alt", seqs)

    def seq(self) -> Node:
        items: list[Node] = []
        while True:
            self.ws()
            if self.i >= len(self.t) or self.t[self.i] in "|)":
                return ("seq", items)
            items.append(self.postfix(self.atom()))

    def atom(self) -> Node:
        c = self.t[self.i]
        if c == '"':
            self.i += 1
            out = []
            while self.t[self.i] != '"':
                if self.t[self.i] == "\\":
                    ch, self.i = _escape(self.t, self.i)
                    out.append(ch)
                else:
                    out.append(self.t[self.i])
                    self.i += 1
            self.i += 1
            return ("lit", "".join(out))
        if c == "[":
            self.i += 1
            neg = self.t[self.i] == "^"
            self.i += neg
            ranges = []
            while self.t[self.i] != "]":
                lo, self.i = _escape(self.t, self.i) if self.t[self.i] == "\\" else (self.t[self.i], self.i + 1)
                hi = lo
                if self.t[self.i] == "-" and self.t[self.i + 1] != "]":
                    self.i += 1
                    hi, self.i = _escape(self.t, self.i) if self.t[self.i] == "\\" else (self.t[self.i], self.i + 1)
                ranges.append((lo, hi))
            self.i += 1
            return ("cls", neg, tuple(ranges))
        if c == "(":
            self.i += 1
            node = self.alt()
            self.i += 1  # ')'
            return node
        if c == ".":
            self.i += 1
            return ("any",)
        m = re.compile(r"[a-zA-Z0-9-]+").match(self.t, self.i)
        assert m, f"bad GBNF at {self.t[self.i:self.i + 30]!r}"
        self.i = m.end()
        return ("ref", m.group(0))

    def postfix(self, node: Node) -> Node:
        while self.i < len(self.t):
            c = self.t[self.i]
            if c == "?":
                node, self.i = ("rep", node, 0, 1), self.i + 1
            elif c == "*":
                node, self.i = ("rep", node, 0, None), self.i + 1
            elif c == "+":
                node, self.i = ("rep", node, 1, None), self.i + 1
            elif c == "{":
                end = self.t.index("}", self.i)
                lo_s, _, hi_s = self.t[self.i + 1:end].partition(",")
                lo = int(lo_s)
                hi = lo if "," not in self.t[self.i:end] else (int(hi_s) if hi_s.strip() else None)
                node, self.i = ("rep", node, lo, hi), end + 1
            else:
                break
        return node


def parse(grammar: str) -> dict[str, Node]:
    rules: dict[str, Node] = {}
    for m in re.finditer(r"^([a-zA-Z0-9-]+)\s*::=(.*?)(?=^[a-zA-Z0-9-]+\s*::=|\Z)", grammar, re.M | re.S):
        rules[m.group(1)] = _Reader(m.group(2).strip()).alt()
    return rules


@dataclass
class Grammar:
    rules: dict[str, Node]

    def accepts(self, text: str, root: str = "root") -> bool:
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))

        @cache
        def ref(name: str, pos: int) -> frozenset[int]:
            return frozenset(match(self.rules[name], pos))

        def match(node: Node, pos: int) -> set[int]:
            kind = node[0]
            if kind == "alt":
                out: set[int] = set()
                for s in node[1]:
                    out |= match(s, pos)
                return out
            if kind == "seq":
                cur = {pos}
                for item in node[1]:
                    nxt: set[int] = set()
                    for p in cur:
                        nxt |= match(item, p)
                    cur = nxt
                    if not cur:
                        break
                return cur
            if kind == "lit":
                return {pos + len(node[1])} if text.startswith(node[1], pos) else set()
            if kind == "cls":
                if pos >= len(text):
                    return set()
                inside = any(lo <= text[pos] <= hi for lo, hi in node[2])
                return {pos + 1} if inside != node[1] else set()
            if kind == "any":
                return {pos + 1} if pos < len(text) else set()
            if kind == "ref":
                return set(ref(node[1], pos))
            _, inner, lo, hi = node
            result: set[int] = {pos} if lo == 0 else set()
            frontier, seen, count = {pos}, {pos}, 0
            while frontier and (hi is None or count < hi):
                count += 1
                nxt = set()
                for p in frontier:
                    nxt |= match(inner, p)
                if count >= lo:
                    result |= nxt
                frontier = nxt - seen if hi is None else nxt
                seen |= nxt
            return result

        return len(text) in match(("ref", root), 0)


def grammar(text: str) -> Grammar:
    return Grammar(parse(text))
