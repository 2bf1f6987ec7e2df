"""Render a conversation through the model's own chat template, tools included.

Messages become the dict shape templates expect (as llama.cpp's ``common_chat_templates_apply_jinja``
prepares them): assistant ``tool_calls`` with ``function.arguments`` as an object (llama.cpp's
``func_args_not_string``), tool results with ``tool_call_id`` and ``name``, thinking as
``reasoning_content`` (and ``thinking``, LFM2.5's name). What a template cannot render is adapted first,
found by rendering probes (llama.cpp's template caps): no system role → the system text heads the first
user turn; no tool calls → calls are written into the assistant text in the family's own syntax; no tool
role → results go in a user turn; strict user/assistant alternation → consecutive turns are merged; no
``tools`` → a tool prompt in the family's syntax goes into the system message. Phi-4-mini takes its tools
as a JSON string in the system message's ``tools`` key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from slmnode.chat.formats.spec import FormatSpec
from slmnode.chat.types import Message, ToolCall, ToolSpec
from slmnode.errors import RequestError


class _Generation(Extension):
    """``{% generation %}…{% endgeneration %}`` (HF transformers' assistant-mask tag): renders its body."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> nodes.Node:
        next(parser.stream)
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return body  # type: ignore[return-value]


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


_ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined,
                                     extensions=[_Generation])
def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    """HF transformers' ``tojson``: plain JSON in key order. (Jinja's own sorts keys, escapes ``<>&'`` and
    returns Markup, whose ``+`` HTML-escapes the other operand: ``<|im_start|>`` would become ``&lt;…``.)"""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


_ENV.globals.update(raise_exception=_raise, strftime_now=lambda fmt: datetime.now().strftime(fmt))
_ENV.filters["tojson"] = _tojson

# Turn formats for models without a template (the embedded Gemma 3 270M has none): the family's own.
_GEMMA3 = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] + "
    "'\\n\\n' -%}{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}")
_CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
           "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
_LLAMA3 = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + ('ipython' if message['role'] == "
           "'tool' else message['role']) + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
           "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
           "{% endif %}")
_PHI = ("{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}")
_MISTRAL = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST]' + "
            "message['content'] + '[/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}")
FALLBACK_TEMPLATES = {"gemma": _GEMMA3, "llama3": _LLAMA3, "phi4": _PHI, "mistral": _MISTRAL,
                      "mistral-args": _MISTRAL}


@dataclass(frozen=True)
class Rendered:
    """A prompt, and what the parser and the engine need to know about it.

    ``thinking_open``: the prompt ends inside an opened thinking block (Qwen 3.5's generation prompt
    ``<think>\\n``): the answer starts with reasoning. ``native_tools``: the template rendered the tools
    itself (else a tool prompt was injected). ``stop``: end-of-turn strings. ``shared_prefix_chars``: where
    the last message's text begins (what precedes it is what the next request likely shares: a
    prompt-cache hint, as in :mod:`slmnode.engine.chat_format`).
    """

    prompt: str
    stop: list[str]
    thinking_open: bool
    native_tools: bool
    family: str
    shared_prefix_chars: int = 0


@dataclass(frozen=True)
class Caps:
    system_role: bool
    tools: bool
    tool_calls: bool
    tool_role: bool
    alternation: bool  # refuses two turns of one role in a row


_PROBE_USER = {"role": "user", "content": "Hi"}


def _probe_call(name: str) -> dict[str, Any]:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"id": "a1b2c3d4e", "type": "function", "function": {"name": name, "arguments": {"arg": "x"}}}]}


def _try(template: jinja2.Template, messages: list[dict[str, Any]], needle: str, **kw: Any) -> bool:
    try:
        return needle in template.render(messages=messages, add_generation_prompt=False, bos_token="", eos_token="",
                                         **kw)
    except Exception:
        return False


@lru_cache(maxsize=32)
def caps_of(source: str) -> Caps:
    """What a template renders, found by rendering probes (cached per template text)."""
    t = _compile(source)
    tool = {"type": "function", "function": {"name": "probe_tool_fn", "description": "d",
                                             "parameters": {"type": "object", "properties": {"arg": {"type": "string"}}}}}
    system = _try(t, [{"role": "system", "content": "PROBE_SYSTEM"}, _PROBE_USER], "PROBE_SYSTEM")
    tools = _try(t, [_PROBE_USER], "probe_tool_fn", tools=[tool])
    calls = _try(t, [_PROBE_USER, _probe_call("probe_call_fn")], "probe_call_fn", tools=[tool])
    result = {"role": "tool", "tool_call_id": "a1b2c3d4e", "name": "probe_call_fn", "content": "PROBE_RESULT"}
    tool_role = _try(t, [_PROBE_USER, _probe_call("probe_call_fn"), result], "PROBE_RESULT",
                     tools=[tool])
    strict = not _try(t, [_PROBE_USER, {"role": "user", "content": "PROBE_TWICE"}], "PROBE_TWICE")
    return Caps(system, tools, calls, tool_role, strict)


@lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def _args(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        return call.arguments


def _short_id(call_id: str) -> str:
    """Mistral's templates refuse ids that are not 9 alphanumerics."""
    return hashlib.sha1(call_id.encode()).hexdigest()[:9]


def call_text(spec: FormatSpec, calls: Sequence[ToolCall]) -> str:
    """Calls written as the model of ``spec`` writes them (for templates that cannot render calls)."""
    items = [(c.name, _args(c)) for c in calls]
    dump = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    if spec.family in ("hermes", "qwen-xml"):
        if spec.family == "qwen-xml":
            return "\n".join("<tool_call>\n<function=" + n + ">\n" + "".join(
                f"<parameter={k}>\n{v if isinstance(v, str) else dump(v)}\n</parameter>\n"
                for k, v in (a.items() if isinstance(a, dict) else [])) + "</function>\n</tool_call>" for n, a in items)
        return "\n".join(f"<tool_call>\n{dump({'name': n, 'arguments': a})}\n</tool_call>" for n, a in items)
    if spec.family == "phi4":
        return "<|tool_call|>" + dump([{"name": n, "arguments": a} for n, a in items]) + "<|/tool_call|>"
    if spec.family == "mistral":
        return "[TOOL_CALLS]" + dump([{"name": n, "arguments": a} for n, a in items])
    if spec.family == "mistral-args":
        return "".join(f"[TOOL_CALLS]{n}[ARGS]{dump(a)}" for n, a in items)
    if spec.family == "lfm2":
        def py(v: Any) -> str:
            return dump(v) if not isinstance(v, bool) and v is not None else repr(v)
        return "<|tool_call_start|>[" + ", ".join(
            n + "(" + ", ".join(f"{k}={py(v)}" for k, v in (a.items() if isinstance(a, dict) else [])) + ")"
            for n, a in items) + "]<|tool_call_end|>"
    if spec.family == "llama3":
        return "\n".join(dump({"name": n, "parameters": a}) for n, a in items)
    return "\n".join(dump({"name": n, "arguments": a}) for n, a in items)


def tool_prompt(spec: FormatSpec, tools: Sequence[ToolSpec]) -> str:
    """The instructions for a template that does not render ``tools`` itself, in the family's syntax."""
    defs = "\n".join(json.dumps(t.as_openai(), ensure_ascii=False) for t in tools)
    if spec.family in ("hermes", "qwen-xml"):
        return ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" + defs +
                "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
                "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
                "<args-json-object>}\n</tool_call>") if spec.family == "hermes" else (
                "# Tools\n\nYou have access to the following functions:\n\n<tools>\n" + defs + "\n</tools>\n\n"
                "If you choose to call a function ONLY reply in the following format with NO suffix:\n\n<tool_call>\n"
                "<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
                "</function>\n</tool_call>")
    if spec.family == "lfm2":
        return "List of tools: [" + ", ".join(json.dumps(t.as_openai(), ensure_ascii=False) for t in tools) + "]"
    if spec.family == "llama3":
        return ("You have access to the following functions. To call a function, please respond with JSON for a "
                'function call. Respond in the format {"name": function name, "parameters": dictionary of argument '
                "name and its value}. Do not use variables.\n\n" + defs)
    return ("You can call the following tools. To call one, reply with only a JSON object "
            '{"name": <tool name>, "arguments": <object matching its parameters>}.\nTools:\n' + defs)


def _one_call_each(messages: Sequence[Message]) -> list[Message]:
    """Assistant turns with several calls split into one turn per call (Llama 3.x templates refuse more)."""
    out: list[Message] = []
    for m in messages:
        if m.role == "assistant" and len(m.tool_calls) > 1:
            out.append(Message("assistant", m.content, m.reasoning, m.tool_calls[:1]))
            out += [Message("assistant", "", "", (c,)) for c in m.tool_calls[1:]]
        else:
            out.append(m)
    return out


def _dicts(spec: FormatSpec, caps: Caps, messages: Sequence[Message], short_ids: bool) -> list[dict[str, Any]]:
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "assistant":
            d: dict[str, Any] = {"role": "assistant", "content": m.content}
            if m.reasoning:
                d["reasoning_content"] = d["thinking"] = m.reasoning
            if m.tool_calls:
                for c in m.tool_calls:
                    names[c.id] = c.name
                if caps.tool_calls:
                    d["tool_calls"] = [{"id": _short_id(c.id) if short_ids else c.id, "type": "function",
                                        "function": {"name": c.name, "arguments": _args(c)}} for c in m.tool_calls]
                else:
                    d["content"] = "\n".join(t for t in (m.content, call_text(spec, m.tool_calls)) if t)
            out.append(d)
        elif m.role == "tool":
            name = m.name or names.get(m.tool_call_id or "", "tool")
            if caps.tool_role:
                call_id = m.tool_call_id or ""
                out.append({"role": "tool", "content": m.content, "name": name,
                            "tool_call_id": _short_id(call_id) if short_ids else call_id})
            else:
                out.append({"role": "user", "content": f"Result of {name}: {m.content}"})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def _adapt(caps: Caps, msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not caps.system_role:
        system = "\n\n".join(m["content"] for m in msgs if m["role"] == "system" and m["content"])
        msgs = [m for m in msgs if m["role"] != "system"]
        if system:
            if msgs and msgs[0]["role"] == "user":
                msgs[0] = {**msgs[0], "content": system + "\n\n" + msgs[0]["content"]}
            else:
                msgs.insert(0, {"role": "user", "content": system})
    if caps.alternation:
        merged: list[dict[str, Any]] = []
        for m in msgs:
            if merged and merged[-1]["role"] == m["role"] and "tool_calls" not in m and "tool_calls" not in merged[-1]:
                merged[-1] = {**merged[-1], "content": merged[-1]["content"] + "\n\n" + m["content"]}
            else:
                merged.append(m)
        msgs = merged
    return msgs


def render(spec: FormatSpec, template: str | None, messages: Sequence[Message], tools: Sequence[ToolSpec] = (), *,
           add_generation_prompt: bool = True, enable_thinking: bool | None = None, bos_token: str = "",
           eos_token: str = "", **extra: Any) -> Rendered:
    """The prompt for ``messages`` (and ``tools``) on a model of format ``spec`` with chat template ``template``
    (None: the family's own turn format). ``extra``: more template variables (``chat_template_kwargs``).
    Raises RequestError when the template refuses the conversation."""
    if not messages:
        raise RequestError("messages must contain at least one message", param="messages")
    source = template or FALLBACK_TEMPLATES.get(spec.family, _CHATML)
    try:
        caps = caps_of(source)
        compiled = _compile(source)
    except jinja2.TemplateError as exc:
        raise RequestError(f"the model's chat template cannot be read: {exc}") from exc
    phi4_tools = spec.family == "phi4" and "'tools' in message" in source
    if spec.family == "phi4":  # its upstream does not document tool results; <|tool|> opens tool definitions
        caps = replace(caps, tool_role=False)
    native = bool(tools) and (caps.tools or phi4_tools)
    short_ids = spec.family in ("mistral", "mistral-args") or "length != 9" in source
    if "only supports single tool-calls" in source:
        messages = _one_call_each(messages)
    msgs = _dicts(spec, caps, messages, short_ids)
    if tools and not native:
        prompt_text = tool_prompt(spec, tools)
        if msgs[0]["role"] == "system":
            msgs[0] = {**msgs[0], "content": (msgs[0]["content"] + "\n\n" if msgs[0]["content"] else "") + prompt_text}
        else:
            msgs.insert(0, {"role": "system", "content": prompt_text})
    if phi4_tools and tools:
        functions = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools]
        if msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": ""})
        msgs[0] = {**msgs[0], "tools": json.dumps(functions, ensure_ascii=False)}
    msgs = _adapt(caps, msgs)
    variables: dict[str, Any] = {**extra, "messages": msgs, "add_generation_prompt": add_generation_prompt,
                                 "bos_token": bos_token, "eos_token": eos_token}
    if native and not phi4_tools:
        variables["tools"] = [t.as_openai() for t in tools]
    if enable_thinking is not None:
        variables["enable_thinking"] = enable_thinking
    try:
        text = compiled.render(**variables)
    except jinja2.TemplateError as exc:
        raise RequestError(f"the model's chat template refused this conversation: {exc}", param="messages") from exc
    if bos_token and text.startswith(bos_token):
        text = text[len(bos_token):]  # the tokenizer adds BOS itself
    stop = list(dict.fromkeys([*spec.stop, *([eos_token] if eos_token else [])]))
    open_ = add_generation_prompt and text.rstrip().endswith(spec.think_open)
    last = next((m.content for m in reversed(messages) if m.content), "")
    shared = max(text.rfind(last), 0) if last else 0
    return Rendered(text, stop, open_, native, spec.family, shared)
