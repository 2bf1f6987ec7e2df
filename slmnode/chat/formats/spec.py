"""Which tool-call syntax and which thinking tags a chat template uses.

Detected from distinctive markers in the template text, the way llama.cpp's ``common/chat.cpp`` picks a
parser, falling back on the GGUF architecture when a model has no template. Each family names the
syntax its models write a call in:

========== ================================================================== ===========================
family     a call, as the model writes it                                    models
========== ================================================================== ===========================
qwen-xml   ``<tool_call>\\n<function=f>\\n<parameter=x>\\n1\\n</parameter>\\n    Qwen 3.5, Qwen3-Coder
           </function>\\n</tool_call>``
hermes     ``<tool_call>\\n{"name": "f", "arguments": {...}}\\n</tool_call>``  Qwen 2.5 / 3, Hermes,
                                                                              SmolLM3
llama3     ``{"name": "f", "parameters": {...}}`` or                          Llama 3.1 / 3.2 / 3.3
           ``<|python_tag|>f.call(x="1")``
mistral    ``[TOOL_CALLS][{"name": "f", "arguments": {...}, "id": "…"}]``     Mistral Nemo / 7B v0.3
mistral-   ``[TOOL_CALLS]f[ARGS]{...}`` (``[CALL_ID]id`` optional)            Devstral, Mistral Small 3.2
args
phi4       ``<|tool_call|>[{"name": "f", "arguments": {...}}]<|/tool_call|>``  Phi-4-mini
lfm2       ``<|tool_call_start|>[f(x=1), g()]<|tool_call_end|>`` (pythonic)    LFM2, LFM2.5
gemma      no native syntax (llama.cpp parses content only): the generic      Gemma 2 / 3
           JSON object below, told in the prompt
generic    ``{"name": "f", "arguments": {...}}`` (also in a ```json fence)     any other model
========== ================================================================== ===========================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["qwen-xml", "hermes", "llama3", "mistral", "mistral-args", "phi4", "lfm2", "gemma", "generic"]

# The JSON-object families: what follows the opener is one JSON object per call (or a JSON list of them).
JSON_OBJECT_FAMILIES: frozenset[str] = frozenset({"hermes", "llama3", "mistral", "phi4", "gemma", "generic"})


@dataclass(frozen=True)
class FormatSpec:
    """How one model writes tool calls and thinking.

    ``openers``: the strings that open a call in the output (the lazy grammar's triggers, the parser's
    markers). ``closer``: what ends one call block ("" when the block ends with the call itself).
    ``think_open``/``think_close``: the thinking tags (every family uses ``<think>`` today).
    ``thinking``: the template knows a thinking mode (``enable_thinking`` or ``<think>`` in it).
    ``stop``: end-of-turn strings of this template family.
    """

    family: Family
    openers: tuple[str, ...]
    closer: str = ""
    think_open: str = "<think>"
    think_close: str = "</think>"
    thinking: bool = False
    stop: tuple[str, ...] = ()

    @property
    def json_objects(self) -> bool:
        """True when calls are JSON objects after the opener (a JSON schema can describe them)."""
        return self.family in JSON_OBJECT_FAMILIES


_CHATML_STOP = ("<|im_end|>", "<|endoftext|>")
_LLAMA3_STOP = ("<|eot_id|>", "<|eom_id|>")
_GEMMA_STOP = ("<end_of_turn>",)
_PHI_STOP = ("<|end|>", "<|endoftext|>")
_MISTRAL_STOP = ("</s>",)

# The opener of the bare-object families: a call object starts with its "name" key (the parser also takes
# whitespace after the brace, and a leading "type": "function").
JSON_CALL_OPENERS = ('{"name"',)
FENCE_OPENER = "```json"

_SPECS: dict[str, FormatSpec] = {
    "qwen-xml": FormatSpec("qwen-xml", ("<tool_call>",), "</tool_call>", stop=_CHATML_STOP),
    "hermes": FormatSpec("hermes", ("<tool_call>",), "</tool_call>", stop=_CHATML_STOP),
    "llama3": FormatSpec("llama3", ("<|python_tag|>", *JSON_CALL_OPENERS), "", stop=_LLAMA3_STOP),
    "mistral": FormatSpec("mistral", ("[TOOL_CALLS]",), "", stop=_MISTRAL_STOP),
    "mistral-args": FormatSpec("mistral-args", ("[TOOL_CALLS]",), "", stop=_MISTRAL_STOP),
    "phi4": FormatSpec("phi4", ("<|tool_call|>",), "<|/tool_call|>", stop=_PHI_STOP),
    "lfm2": FormatSpec("lfm2", ("<|tool_call_start|>",), "<|tool_call_end|>", stop=_CHATML_STOP),
    "gemma": FormatSpec("gemma", (FENCE_OPENER, *JSON_CALL_OPENERS), "", stop=_GEMMA_STOP),
    "generic": FormatSpec("generic", (FENCE_OPENER, *JSON_CALL_OPENERS), "", stop=()),
}

_BY_ARCH: dict[str, Family] = {
    "qwen2": "hermes", "qwen2moe": "hermes", "qwen3": "hermes", "qwen3moe": "hermes", "smollm3": "hermes",
    "qwen35": "qwen-xml", "qwen35moe": "qwen-xml", "qwen3next": "qwen-xml",
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma",
    "lfm2": "lfm2", "lfm2moe": "lfm2",
}

_THINKING_MARKERS = ("enable_thinking", "<think>", "reasoning_content")


def spec_for(family: Family, *, thinking: bool = False, stop: tuple[str, ...] | None = None) -> FormatSpec:
    base = _SPECS[family]
    return FormatSpec(base.family, base.openers, base.closer, base.think_open, base.think_close, thinking,
                      base.stop if stop is None else stop)


def _family_of(src: str) -> Family | None:
    def has(*needles: str) -> bool:
        return all(n in src for n in needles)

    if has("<|tool_call_start|>") or has("<|tool_list_start|>") or has("List of tools: ["):
        return "lfm2"
    if has("[TOOL_CALLS]"):
        return "mistral-args" if has("[ARGS]") else "mistral"
    if has("<tool_call>", "<function=", "<parameter="):
        return "qwen-xml"
    if has("<|tool_call|>") or has("<|tool|>", "<|/tool|>"):
        return "phi4"
    if has("<tool_call>"):
        return "hermes"
    if has("<|python_tag|>") or has("<|start_header_id|>", '"parameters"'):
        return "llama3"
    if has("Reasoning Mode: ") and has("/no_think"):  # SmolLM3 (its tool prompt asks for <tool_call>)
        return "hermes"
    if has("<start_of_turn>"):
        return "gemma"
    return None


def _stop_for(src: str, family: Family) -> tuple[str, ...]:
    for marker, stop in (("<|im_end|>", _CHATML_STOP), ("<|eot_id|>", _LLAMA3_STOP), ("<end_of_turn>", _GEMMA_STOP),
                         ("<|end|>", _PHI_STOP)):
        if marker in src:
            return stop
    return _SPECS[family].stop


def detect(chat_template: str | None, architecture: str) -> FormatSpec:
    """The format of a model: by its template's markers, else by its architecture, else generic."""
    src = chat_template or ""
    family = _family_of(src) if src else None
    if family is None:
        family = _BY_ARCH.get(architecture, "generic") if not src else "generic"
        if src and architecture in _BY_ARCH and _BY_ARCH[architecture] == "gemma":
            family = "gemma"
    thinking = any(m in src for m in _THINKING_MARKERS)
    return spec_for(family, thinking=thinking, stop=_stop_for(src, family) if src else None)
