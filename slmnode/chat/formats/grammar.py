"""Lazy tool-call grammars: what opens a call (the trigger) and what the call may be, per format.

Free text stays unconstrained; once the model writes a trigger, the grammar applies, so every call names
a known function and its arguments validate against that function's schema. Convention (llama.cpp's lazy
grammars): the grammar describes the whole call block *starting with the trigger*; when a trigger appears,
the sampler starts the grammar at the trigger's first character and feeds the trigger's text through it.

- JSON syntaxes (hermes, phi4, mistral, llama3, gemma, generic): :func:`call_schema_after_trigger` gives
  the JSON schema of the JSON that follows the trigger (a call object, or a list of them); the block is
  ``trigger ws JSON ws closer``. For the bare-object formats the trigger ``{"name"`` is the start of that
  JSON itself (:attr:`CallGrammar.trigger_in_json`).
- Non-JSON syntaxes (qwen-xml, lfm2 pythonic, mistral-args): no JSON schema describes them; :func:`call_gbnf`
  writes the GBNF by hand (tags, names, parameter order) and uses the engine's JSON-schema→GBNF converter,
  passed in as ``schema_to_gbnf``, for every JSON-valued piece (each argument value, or the arguments
  object). String values of Qwen's XML calls are free text that cannot contain ``</parameter>``.

This module never imports llama_cpp: the engine passes its converter (``slmnode.engine.grammar.schema_to_gbnf``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slmnode.chat.formats.readers import schema_types
from slmnode.chat.formats.spec import FENCE_OPENER, FormatSpec
from slmnode.chat.types import ToolSpec
from slmnode.engine.gbnf import prefixed

SchemaToGbnf = Callable[[dict[str, Any]], str]  # a JSON schema → a complete GBNF grammar with a ``root`` rule

JSON_START_PATTERN = r'\{\s*"name"'


@dataclass(frozen=True)
class CallGrammar:
    """``triggers``: literal words that start the grammar; ``trigger_patterns``: the same as regular
    expressions (for the bare-object formats, whose first key may follow whitespace); ``gbnf``: the call
    block from the trigger on; ``schema``: the JSON after the trigger (JSON syntaxes only);
    ``trigger_in_json``: the trigger is the start of that JSON (bare-object formats)."""

    triggers: list[str]
    trigger_patterns: list[str]
    gbnf: str
    schema: dict[str, Any] | None
    trigger_in_json: bool


def grammar_triggers(spec: FormatSpec) -> list[str]:
    """The strings that open a call in this format."""
    return list(spec.openers)


def lazy_trigger_patterns(spec: FormatSpec, *, thinking_open: bool) -> list[str]:
    """Trigger patterns for llama.cpp's lazy grammar sampler (``llama_sampler_init_grammar_lazy_patterns``) that
    do not fire inside thinking: the sampler matches each ``^…$`` pattern against all the text generated so far
    and starts the grammar at the first capture group. ``thinking_open``: the prompt opened thinking.

    Qwen 3.5 needs none of this: its ``<tool_call>`` ends thinking (as llama.cpp's Qwen3-Coder parser has it).
    """
    base = [re.escape(t) for t in spec.openers if not t.startswith("{")]
    if spec.json_objects and spec.family in ("llama3", "gemma", "generic"):
        base.append(JSON_START_PATTERN)
    if spec.family == "qwen-xml":
        return base
    close = re.escape(spec.think_close)
    think = re.escape(spec.think_open)
    out = []
    for p in base:
        if thinking_open:
            out.append(rf"^[\s\S]*?{close}[\s\S]*?({p})[\s\S]*$")
        else:
            out.append(rf"^(?!\s*{think})[\s\S]*?({p})[\s\S]*$")
            out.append(rf"^\s*{think}[\s\S]*?{close}[\s\S]*?({p})[\s\S]*$")
    return out


def _call_object(spec: FormatSpec, tool: ToolSpec) -> dict[str, Any]:
    args_key = "parameters" if spec.family == "llama3" else "arguments"
    props: dict[str, Any] = {"name": {"const": tool.name}, args_key: tool.parameters or {"type": "object"}}
    if spec.family == "mistral":
        props["id"] = {"type": "string", "pattern": "^[a-zA-Z0-9]{9}$"}
    return {"type": "object", "properties": props, "required": ["name", args_key]}


def call_schema_after_trigger(spec: FormatSpec, tools: Sequence[ToolSpec], *, parallel: bool = True
                              ) -> dict[str, Any] | None:
    """JSON schema of what follows the trigger, for JSON syntaxes (None for qwen-xml, lfm2, mistral-args)."""
    if not spec.json_objects or not tools:
        return None
    objects = [_call_object(spec, t) for t in tools]
    one = objects[0] if len(objects) == 1 else {"anyOf": objects}
    if spec.family in ("phi4", "mistral"):
        listed: dict[str, Any] = {"type": "array", "items": one, "minItems": 1}
        if not parallel:
            listed["maxItems"] = 1
        return listed
    return one


# -- GBNF composition ----------------------------------------------------------------------------------------

def lit(text: str) -> str:
    """A GBNF string literal."""
    out = []
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _cls_char(ch: str) -> str:
    return f"\\x{ord(ch):02X}" if ord(ch) < 0x100 else f"\\u{ord(ch):04X}"


def excluding(name: str, delim: str) -> list[str]:
    """Rules ``name`` (and helpers) for any text that does not contain ``delim`` (a KMP automaton: one rule per
    matched prefix of ``delim``; the text may end in any state)."""
    n = len(delim)
    fail = [0] * (n + 1)
    k = 0
    for i in range(1, n):
        while k and delim[i] != delim[k]:
            k = fail[k]
        if delim[i] == delim[k]:
            k += 1
        fail[i + 1] = k

    def step(state: int, ch: str) -> int:
        while state and delim[state] != ch:
            state = fail[state]
        return state + 1 if delim[state] == ch else 0

    chars = sorted(set(delim))
    rules = []
    for state in range(n):
        alts = ['""']
        special = []
        for ch in chars:
            nxt = step(state, ch)
            if nxt == n:
                special.append(ch)  # would complete the delimiter: not allowed
            elif nxt > 0:
                special.append(ch)
                alts.append(f"[{_cls_char(ch)}] {name}-{nxt}")
        alts.append(f"[^{''.join(_cls_char(c) for c in special)}] {name}-0")
        rules.append(f"{name}-{state} ::= " + " | ".join(alts))
    rules.append(f"{name} ::= {name}-0")
    return rules


class _Builder:
    def __init__(self, schema_to_gbnf: SchemaToGbnf) -> None:
        self.convert = schema_to_gbnf
        self.rules: list[str] = []
        self.count = 0

    def json(self, schema: dict[str, Any]) -> str:
        """A rule name for JSON text valid against ``schema``."""
        self.count += 1
        lines, root = prefixed(self.convert(schema), f"j{self.count}-")
        self.rules += lines
        return root

    def add(self, rule: str) -> None:
        self.rules.append(rule)


def _props(tool: ToolSpec) -> tuple[list[tuple[str, Any]], set[str]]:
    params = tool.parameters or {}
    props = params.get("properties") or {}
    return list(props.items()), set(params.get("required") or [])


def _free_text(schema: Any) -> bool:
    """A value the parser keeps as raw text when it is not JSON of the schema's other types (see
    :func:`readers.xml_value`): any text (without ``</parameter>``) is allowed."""
    types = schema_types(schema)
    return "string" in types or not types


def _optional_tail(opt: list[str], start: int) -> str:
    """Optional keyword arguments, in order, after at least one argument: each with its comma."""
    return " ".join(f'(", " {o})?' for o in opt[start:])


def call_gbnf(spec: FormatSpec, tools: Sequence[ToolSpec], schema_to_gbnf: SchemaToGbnf, *,
              parallel: bool = True) -> CallGrammar:
    """The lazy grammar for calls of ``tools`` in format ``spec`` (see the module docstring)."""
    b = _Builder(schema_to_gbnf)
    triggers = grammar_triggers(spec)
    patterns = [re.escape(t) for t in triggers if not t.startswith("{")]
    schema = call_schema_after_trigger(spec, tools, parallel=parallel)
    trigger_in_json = False
    b.add('ws ::= [ \\t\\n]*')
    if schema is not None:
        body = b.json(schema)
        if spec.family in ("llama3", "gemma", "generic"):
            trigger_in_json = True
            patterns.append(JSON_START_PATTERN)
            alts = []
            if "<|python_tag|>" in triggers:
                alts.append(f'"<|python_tag|>" ws {body}')
            if FENCE_OPENER in triggers:
                alts.append(f'{lit(FENCE_OPENER)} ws {body} ws "```"')
            alts.append(body)
            b.add("root ::= " + " | ".join(alts))
        else:
            closer = f" ws {lit(spec.closer)}" if spec.closer else ""
            repeat = f" (ws {lit(triggers[0])} ws {body}{closer})*" if parallel and spec.family == "hermes" else ""
            b.add(f"root ::= {lit(triggers[0])} ws {body}{closer}{repeat}")
    elif spec.family == "qwen-xml":
        b.add('xml-text ::= xml-free')
        b.rules += excluding("xml-free", "</parameter>")
        calls = []
        for i, tool in enumerate(tools):
            params, required = _props(tool)
            parts = []
            for key, sub in params:
                value = "xml-text" if _free_text(sub) else b.json(sub)
                item = f'{lit(f"<parameter={key}>" + chr(10))} {value} {lit(chr(10) + "</parameter>" + chr(10))}'
                parts.append(f"({item})" + ("" if key in required else "?"))
            b.add(f"call-{i} ::= {lit('<function=' + tool.name + '>' + chr(10))} {' '.join(parts)} "
                  f"{lit('</function>' + chr(10) + '</tool_call>')}".replace("  ", " "))
            calls.append(f"call-{i}")
        block = f'"<tool_call>" ws ({" | ".join(calls)})'
        b.add(f"root ::= {block}" + (f" (ws {block})*" if parallel else ""))
    elif spec.family == "lfm2":
        calls = []
        for i, tool in enumerate(tools):
            params, required = _props(tool)
            req = [f"{lit(k + '=')} {b.json(s)}" for k, s in params if k in required]
            opt = [f"{lit(k + '=')} {b.json(s)}" for k, s in params if k not in required]
            if req:
                args = ' ", " '.join(req) + " " + _optional_tail(opt, 0)
            elif opt:  # no required argument: the first present one has no comma
                args = "(" + " | ".join(f"{o} {_optional_tail(opt, j + 1)}" for j, o in enumerate(opt)) + ")?"
            else:
                args = ""
            b.add(f"call-{i} ::= {lit(tool.name + '(')} {args} \")\"")
            calls.append(f"call-{i}")
        one = "(" + " | ".join(calls) + ")"
        more = f' ("," ws {one})*' if parallel else ""
        b.add(f'root ::= "<|tool_call_start|>[" {one}{more} "]<|tool_call_end|>"')
    elif spec.family == "mistral-args":
        calls = [f"{lit(t.name + '[ARGS]')} {b.json(t.parameters or {'type': 'object'})}" for t in tools]
        block = '"[TOOL_CALLS]" (' + " | ".join(calls) + ")"
        b.add(f"root ::= {block}" + (f" ({block})*" if parallel else ""))
    else:
        raise ValueError(f"no call grammar for format {spec.family}")
    return CallGrammar(triggers, patterns, "\n".join(b.rules) + "\n", schema, trigger_in_json)
