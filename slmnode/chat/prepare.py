"""A :class:`Conversation` made ready for the engine: prompt, generation params and an output parser.

Two paths:
- **native** (a model with a chat template, tools ``auto``/none, default chat format): the model's own
  template renders messages, tools, calls and results (:mod:`slmnode.chat.formats`), and its output is parsed
  in its own syntax: tool calls, ``<think>`` reasoning, text. Structured output (``json_schema``) turns thinking
  off, so the grammar that starts at the first token never meets a thinking block.
- **forced** (``tool_choice`` required or a function), a model without a template, or a forced chat format:
  :mod:`slmnode.engine.chat_format` renders, and a call is the generic ``{"name": ..., "arguments": ...}``
  object; when a tool is required, the grammar admits only such a call, so arguments always validate.

With tools ``auto`` the native path adds a **lazy grammar** in the family's own syntax: free text until the
model opens a call (its trigger), then the call is constrained so it names a known function and its arguments
validate (``chat.formats.grammar``; JSON-schema pieces are expanded in the worker, ``engine.gbnf``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from slmnode.catalog.model_info import ModelInfo
from slmnode.chat.formats import call_gbnf, detect, lazy_trigger_patterns, new_parser, render
from slmnode.chat.formats.spec import FENCE_OPENER
from slmnode.chat.types import (
    ChatEvent,
    Conversation,
    Message,
    OutputParser,
    TextDelta,
    ToolCallDelta,
)
from slmnode.engine.chat_format import render_chat
from slmnode.engine.gbnf import SchemaSlots
from slmnode.engine.protocol import GenerationParams
from slmnode.engine.tools import call_schema, forced_tools, parse_tool_call


@dataclass
class Prepared:
    prompt: str
    params: GenerationParams
    parser: OutputParser
    forced: bool  # the grammar admits only a tool call


def wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """OpenAI-shaped message dicts (what chat templates are written against)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.reasoning:
            d["reasoning_content"] = m.reasoning
        if m.tool_calls:
            d["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                               for c in m.tool_calls]
        if m.tool_call_id is not None:
            d["tool_call_id"] = m.tool_call_id
        if m.name is not None:
            d["name"] = m.name
        out.append(d)
    return out


class GenericParser:
    """Text that opens with ``{`` may be a generic tool call: hold it to the end, then parse it."""

    def __init__(self, fns: list[dict[str, Any]], forced: bool) -> None:
        self._fns = fns
        self._hold = forced
        self._decided = forced or not fns
        self._held: list[str] = []

    def feed(self, text: str) -> list[ChatEvent]:
        if not self._decided and text.strip():
            self._decided, self._hold = True, text.lstrip().startswith("{")
        if self._hold or not self._decided:
            self._held.append(text)
            return []
        return [TextDelta(text)] if text else []

    def finish(self) -> list[ChatEvent]:
        text = "".join(self._held)
        self._held.clear()
        call = parse_tool_call(text, self._fns) if self._fns else None
        if call is not None:
            return [ToolCallDelta(0, call.arguments, id=call.id, name=call.name)]
        return [TextDelta(text)] if text else []


def prepare(info: ModelInfo, conv: Conversation, chat_format: str = "auto") -> Prepared:
    fns = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in conv.tools]
    if conv.tool_choice.mode == "none":
        fns = []
    choice: Any = conv.tool_choice.mode
    if choice == "function":
        choice = {"type": "function", "function": {"name": conv.tool_choice.name}}
    forced = forced_tools(fns, choice)
    if info.chat_template and chat_format in ("auto", "template"):
        return _prepare_native(info, conv, forced)
    rendered = render_chat(info, wire_messages(conv.messages), fns or None, chat_format)
    params = conv.params.model_copy(update={"stop": list(dict.fromkeys([*conv.params.stop, *rendered.stop])),
                                            "shared_prefix_chars": rendered.shared_prefix_chars,
                                            "stream": conv.stream})
    if forced:
        params = params.model_copy(update={"json_schema": call_schema(forced), "json_object": False})
    return Prepared(rendered.prompt, params, GenericParser(fns, bool(forced)), bool(forced))


def thinking_budget(conv: Conversation) -> int | None:
    """Thinking tokens allowed: the request's budget, else (with max_tokens) all but a quarter of max_tokens
    (at least 16 tokens, at most half), so a small model that would think to the end still answers."""
    if conv.reasoning.budget_tokens is not None:
        return conv.reasoning.budget_tokens
    n = conv.params.max_tokens
    if n is None:
        return None
    return n - min(max(n // 4, 16), n // 2)


def _prepare_native(info: ModelInfo, conv: Conversation, forced: list[dict[str, Any]] | None) -> Prepared:
    """The model's own template and syntax. ``forced`` (tool_choice required or a function): the grammar starts at
    the first token and admits only calls of those functions (thinking off, so the answer is the call)."""
    spec = detect(info.chat_template, info.architecture)
    tools = conv.tools if conv.tool_choice.mode != "none" else []
    structured = conv.params.json_schema is not None or conv.params.json_object
    thinking = False if (structured or forced) else conv.reasoning.enabled
    extra = {k: v for k, v in conv.template_kwargs.items() if k not in ("enable_thinking", "messages", "tools")}
    r = render(spec, info.chat_template, conv.messages, tools, enable_thinking=thinking,
               bos_token=info.bos_token or "", eos_token=info.eos_token or "", **extra)
    params = conv.params.model_copy(update={"stop": list(dict.fromkeys([*conv.params.stop, *r.stop])),
                                            "shared_prefix_chars": r.shared_prefix_chars, "stream": conv.stream})
    if spec.thinking and thinking is not False:
        params = params.model_copy(update={"reasoning_budget": thinking_budget(conv), "reasoning_open": r.thinking_open,
                                           "reasoning_tags": (spec.think_open, spec.think_close)})
    if forced:
        names = {f["name"] for f in forced}
        callable_tools = [t for t in tools if t.name in names]
        slots = SchemaSlots()
        # the answer is the call itself: no markdown fence around a bare call object
        bare = replace(spec, openers=tuple(o for o in spec.openers if o != FENCE_OPENER))
        g = call_gbnf(bare, callable_tools, slots, parallel=conv.parallel_tool_calls)
        params = params.model_copy(update={"grammar": g.gbnf, "grammar_schemas": slots.schemas, "grammar_triggers": [],
                                           "json_schema": None, "json_object": False})
    elif tools and not structured:
        slots = SchemaSlots()
        g = call_gbnf(spec, tools, slots, parallel=conv.parallel_tool_calls)
        params = params.model_copy(update={
            "grammar": g.gbnf, "grammar_schemas": slots.schemas,
            "grammar_triggers": lazy_trigger_patterns(spec, thinking_open=r.thinking_open),
            "grammar_trigger_starts": "".join(sorted({o[0] for o in spec.openers if o}))})
    parser = new_parser(spec, tools, thinking_open=r.thinking_open, stream_arguments=conv.stream)
    return Prepared(r.prompt, params, parser, bool(forced))


def arguments_object(arguments: str) -> dict[str, Any]:
    """A call's JSON-text arguments as an object (for wire formats that send objects: Ollama, Anthropic)."""
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
