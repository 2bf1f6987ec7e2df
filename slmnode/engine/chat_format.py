"""Turn chat messages into a prompt string for the model.

Order of choice:
1. the model's own ``tokenizer.chat_template`` (Jinja, rendered in a sandbox), when it has one;
2. else the known turn format of its family (by its end-of-turn token, then its architecture).

The embedded Gemma 3 270M GGUF has no template: without Gemma's turn format it echoes the prompt.
System messages are never dropped: where a format has no system role (Gemma), the system text
goes at the head of the first user turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from slmnode.catalog.model_info import ModelInfo
from slmnode.engine.tools import tool_prompt
from slmnode.errors import RequestError


@dataclass(frozen=True)
class Rendered:
    prompt: str
    stop: list[str]
    format: str
    # where the last message's text begins: what precedes it (system prompt, earlier turns) is what the
    # next request of the same agent or conversation is likely to share (a prompt-cache hint)
    shared_prefix_chars: int = 0


def shared_prefix_chars(prompt: str, msgs: list[tuple[str, str]]) -> int:
    """Characters of ``prompt`` before the last message's text (0 if it cannot be found)."""
    last = next((text for _, text in reversed(msgs) if text), "")
    at = prompt.rfind(last) if last else -1
    return max(at, 0)


@dataclass(frozen=True)
class _Turns:
    name: str
    system: str | None  # None: no system role; merge into first user turn
    user: str
    assistant: str
    tool: str | None  # None: tool results go in a user turn
    end: str
    generation: str
    stop: tuple[str, ...]


_FORMATS: dict[str, _Turns] = {
    "gemma": _Turns("gemma", None, "<start_of_turn>user\n", "<start_of_turn>model\n", None,
                    "<end_of_turn>\n", "<start_of_turn>model\n", ("<end_of_turn>", "<start_of_turn>")),
    "chatml": _Turns("chatml", "<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n",
                     "<|im_start|>tool\n", "<|im_end|>\n", "<|im_start|>assistant\n", ("<|im_end|>", "<|im_start|>")),
    "llama3": _Turns("llama3", "<|start_header_id|>system<|end_header_id|>\n\n",
                     "<|start_header_id|>user<|end_header_id|>\n\n",
                     "<|start_header_id|>assistant<|end_header_id|>\n\n",
                     "<|start_header_id|>ipython<|end_header_id|>\n\n", "<|eot_id|>",
                     "<|start_header_id|>assistant<|end_header_id|>\n\n", ("<|eot_id|>", "<|eom_id|>")),
    "phi3": _Turns("phi3", "<|system|>\n", "<|user|>\n", "<|assistant|>\n", None, "<|end|>\n",
                   "<|assistant|>\n", ("<|end|>", "<|endoftext|>")),
    # A plain transcript for base models that never saw a chat format.
    "plain": _Turns("plain", "", "User: ", "Assistant: ", None, "\n", "Assistant:",
                    ("\nUser:", "\nAssistant:")),
}
CHAT_FORMATS = ("auto", "template", *_FORMATS)
_BY_END_TOKEN = {"<end_of_turn>": "gemma", "<|im_end|>": "chatml", "<|eot_id|>": "llama3", "<|end|>": "phi3"}
_BY_ARCH = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma", "qwen2": "chatml",
            "qwen3": "chatml", "qwen3moe": "chatml", "qwen35": "chatml", "phi3": "phi3", "llama": "llama3"}


def known_format(info: ModelInfo) -> str:
    for tok in (info.eot_token, info.eos_token):
        if tok in _BY_END_TOKEN:
            return _BY_END_TOKEN[tok]
    return _BY_ARCH.get(info.architecture, "chatml")


def text_of(content: Any, where: str) -> str:
    """A message's text: a string, or a list of text parts (other parts are refused with a clear error)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text") \
                    and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise RequestError(f"{where}: content part of type '{kind}' is not supported by this model; send text",
                                   param="messages")
        return "\n".join(parts)
    raise RequestError(f"{where}: content must be a string or a list of text parts", param="messages")


def _tool_call_text(calls: list[dict[str, Any]]) -> str:
    out = []
    for call in calls:
        fn = call.get("function", {})
        args = fn.get("arguments", "{}")
        try:
            args = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            pass
        out.append(json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False))
    return "\n".join(out)


def normalize(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) pairs; roles system/user/assistant/tool. Raises RequestError on bad input."""
    if not messages:
        raise RequestError("messages must contain at least one message", param="messages")
    out: list[tuple[str, str]] = []
    ids: dict[str, str] = {}
    for i, m in enumerate(messages):
        role = m.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            out.append(("system", text_of(m.get("content"), where)))
        elif role == "user":
            out.append(("user", text_of(m.get("content"), where)))
        elif role == "assistant":
            text = text_of(m.get("content"), where)
            calls = m.get("tool_calls") or []
            for c in calls:
                ids[c.get("id", "")] = (c.get("function") or {}).get("name", "")
            out.append(("assistant", "\n".join(t for t in (text, _tool_call_text(calls)) if t)))
        elif role in ("tool", "function"):
            name = m.get("name") or ids.get(m.get("tool_call_id", ""), "tool")
            out.append(("tool", f"Result of {name}: {text_of(m.get('content'), where)}"))
        else:
            raise RequestError(f"{where}.role must be one of system, user, assistant, tool; got {role!r}", param="messages")
    return out


def _render_known(fmt: _Turns, msgs: list[tuple[str, str]], tools_text: str | None) -> str:
    system = [t for r, t in msgs if r == "system"]
    if tools_text:
        system.append(tools_text)
    rest = [(r, t) for r, t in msgs if r != "system"]
    if fmt.tool is None:
        rest = [("user" if r == "tool" else r, t) for r, t in rest]
    # merge consecutive turns of the same role (Gemma expects user/model alternation)
    merged: list[list[str]] = []
    for role, text in rest:
        if merged and merged[-1][0] == role:
            merged[-1][1] += "\n\n" + text
        else:
            merged.append([role, text])
    out = []
    sys_text = "\n\n".join(s for s in system if s)
    if sys_text and fmt.system is not None:
        out.append(fmt.system + sys_text + fmt.end)
    elif sys_text:
        if merged and merged[0][0] == "user":
            merged[0][1] = sys_text + "\n\n" + merged[0][1]
        else:
            merged.insert(0, ["user", sys_text])
    prefix = {"user": fmt.user, "assistant": fmt.assistant, "tool": fmt.tool or fmt.user}
    for role, text in merged:
        out.append(prefix[role] + text + fmt.end)
    out.append(fmt.generation)
    return "".join(out)


_ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined)


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


_ENV.globals.update(raise_exception=_raise, strftime_now=lambda fmt: datetime.now().strftime(fmt))


def _render_template(info: ModelInfo, messages: list[dict[str, Any]], fns: list[dict[str, Any]] | None) -> str:
    template = _ENV.from_string(info.chat_template or "")
    tools = [{"type": "function", "function": f} for f in fns] if fns else None
    text = template.render(messages=messages, tools=tools, add_generation_prompt=True,
                           bos_token=info.bos_token or "", eos_token=info.eos_token or "")
    if info.bos_token and text.startswith(info.bos_token):
        text = text[len(info.bos_token):]  # the tokenizer adds BOS itself
    return text


def render_chat(info: ModelInfo, messages: list[dict[str, Any]], fns: list[dict[str, Any]] | None = None,
                chat_format: str = "auto") -> Rendered:
    """The prompt and stop strings for ``messages`` (OpenAI shape) on model ``info``.

    ``chat_format``: "auto" (GGUF template, else the family's format), "template" (same), or a
    format name forcing it (e.g. "plain" for a base model that ignores its family's turn tokens).
    """
    msgs = normalize(messages)
    forced = chat_format not in ("auto", "template")
    if forced and chat_format not in _FORMATS:
        raise RequestError(f"unknown chat format '{chat_format}'; choose one of {', '.join(CHAT_FORMATS)}")
    fmt = _FORMATS[chat_format if forced else known_format(info)]
    if info.chat_template and not forced:
        try:
            text = _render_template(info, messages, fns)
            return Rendered(text, list(fmt.stop), "gguf-template", shared_prefix_chars(text, msgs))
        except jinja2.TemplateError:
            pass  # a template that rejects these messages: fall back to the known format
    text = _render_known(fmt, msgs, tool_prompt(fns) if fns else None)
    return Rendered(text, list(fmt.stop), fmt.name, shared_prefix_chars(text, msgs))


def render_completion(info: ModelInfo, prompt: str) -> Rendered:
    """Raw completion: the prompt as given, with the family's end-of-turn stops."""
    return Rendered(prompt, [], "raw")
