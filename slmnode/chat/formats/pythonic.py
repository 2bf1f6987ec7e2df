"""Python-style calls (``f(a=1, b="x")``), as LFM2 and Llama's ``<|python_tag|>`` write them, turned into JSON.

Argument values are Python literals or JSON literals (``True``/``true``, ``None``/``null``, strings in either
quote, dicts, lists, numbers); anything else (a variable, an expression, a positional argument) is not a
call we can hand to a client, and :func:`parse_call` raises ValueError.
"""

from __future__ import annotations

import ast
import json
from typing import Any

_NAMES = {"True": True, "true": True, "False": False, "false": False, "None": None, "null": None}


def _value(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, int, float, bool))):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _value(node.operand)
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_value(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[str, Any] = {}
        for k, v in zip(node.keys, node.values, strict=True):
            key = _value(k) if k is not None else None
            if not isinstance(key, str):
                raise ValueError("dict keys must be strings")
            out[key] = _value(v)
        return out
    raise ValueError(f"not a literal: {ast.dump(node)[:60]}")


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    raise ValueError("not a function name")


def parse_call(text: str) -> tuple[str, dict[str, Any]]:
    """``name(k=v, ...)`` → (name, arguments). Raises ValueError when it is not such a call."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not a call: {exc.msg}") from exc
    call = tree.body
    if not isinstance(call, ast.Call) or call.args:
        raise ValueError("not a call with keyword arguments")
    args: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise ValueError("**kwargs is not a literal argument")
        args[kw.arg] = _value(kw.value)
    return _dotted(call.func), args


def call_end(text: str, start: int) -> int | None:
    """Index just past the ``)`` that closes the call whose ``(`` is at or after ``start``; None if not yet
    complete. Brackets inside string literals (either quote, with escapes) do not count."""
    depth = 0
    quote = ""
    escaped = False
    opened = False
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = ""
            continue
        if c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
            opened = True
        elif c in ")]}":
            depth -= 1
            if opened and depth == 0:
                return i + 1
    return None


def to_json(args: dict[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False)
