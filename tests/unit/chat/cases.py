"""Table of canned model outputs per format family, with what they must parse to.

Most outputs are llama.cpp's own (``tests/test-chat.cpp`` at the version vendored by llama-cpp-python 0.3.36,
and the same file's older Llama 3.x cases); the tools mirror test-chat.cpp's. Templates are in
``tests/data/chat_templates`` (see PROVENANCE.md there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmnode.chat.types import ToolSpec

TEMPLATES = Path(__file__).resolve().parents[2] / "data" / "chat_templates"


def template(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text()


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


SPECIAL = ToolSpec("special_function", "I'm special", _obj({"arg1": {"type": "integer"}}, ["arg1"]))
SPECIAL_OPT = ToolSpec("special_function_with_opt", "I'm special but have optional stuff",
                       _obj({"arg1": {"type": "integer"}, "arg2": {"type": "integer"}}, ["arg1"]))
PYTHON = ToolSpec("python", "an ipython interpreter", _obj({"code": {"type": "string"}}, ["code"]))
GET_TIME = ToolSpec("get_time", "Get the current time in a city", _obj({"city": {"type": "string"}}, ["city"]))
EDIT = ToolSpec("edit", "Edit a file", _obj({"filename": {"type": "string"}, "oldString": {"type": "string"},
                                             "newString": {"type": "string"}}, ["filename", "oldString", "newString"]))
TERMINAL = ToolSpec("run_in_terminal", "Run a command", _obj({"command": {"type": "string"}}, ["command"]))
EMPTY = ToolSpec("empty_args", "No args", {"type": "object", "properties": {}})
TOGGLE = ToolSpec("toggle", "Toggle", _obj({"enabled": {"type": "boolean"}}, ["enabled"]))
CONFIG = ToolSpec("set_config", "Set config", _obj({"config": {"type": "object"}}, ["config"]))
TOOLS = [SPECIAL, SPECIAL_OPT, PYTHON, GET_TIME, EDIT, TERMINAL, EMPTY, TOGGLE, CONFIG]

CALL_1 = ("special_function", {"arg1": 1})
HELLO = "Hello, world!\nWhat's up?"
THOUGHT = "I'm\nthinking"


@dataclass(frozen=True)
class Case:
    id: str
    template: str  # file stem in tests/data/chat_templates ("" = no template)
    text: str
    content: str = ""
    reasoning: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    thinking_open: bool = False  # the prompt opened thinking (Qwen 3.5's generation prompt)
    architecture: str = ""


def _xml(name: str, **params: str) -> str:
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


CASES: list[Case] = [
    # Qwen 3.5 (test-chat.cpp "Qwen3.5"): XML calls, thinking opened by the prompt
    Case("qwen35-thoughts", "Qwen3.5-4B", "I'm\nthinking\n</think>\n\nHello, world!\nWhat's up?", HELLO, THOUGHT,
         thinking_open=True),
    Case("qwen35-call", "Qwen3.5-4B", _xml("special_function", arg1="1"), calls=[CALL_1]),
    Case("qwen35-call-after-thoughts", "Qwen3.5-4B", "I'm\nthinking\n</think>\n\n" + _xml("special_function", arg1="1"),
         reasoning=THOUGHT, calls=[CALL_1], thinking_open=True),
    Case("qwen35-parallel", "Qwen3.5-4B",
         _xml("special_function", arg1="1") + "\n" + _xml("special_function_with_opt", arg1="1", arg2="2"),
         calls=[CALL_1, ("special_function_with_opt", {"arg1": 1, "arg2": 2})]),
    Case("qwen35-code", "Qwen3.5-4B", _xml("python", code='def hello():\n    print("Hello, world!")\n\nhello()'),
         calls=[("python", {"code": 'def hello():\n    print("Hello, world!")\n\nhello()'})]),
    Case("qwen35-trailing-newline", "Qwen3.5-4B", _xml("edit", filename="foo.c", oldString="#iclunde",
                                                       newString="#include\n"),
         calls=[("edit", {"filename": "foo.c", "oldString": "#iclunde", "newString": "#include\n"})]),
    Case("qwen35-call-ends-thinking", "Qwen3.5-4B", "Need to inspect the current directory.\n" +
         _xml("run_in_terminal", command="pwd"), reasoning="Need to inspect the current directory.",
         calls=[("run_in_terminal", {"command": "pwd"})], thinking_open=True),
    Case("qwen35-call-closes-opened-thinking", "Qwen3.5-4B", _xml("run_in_terminal", command="pwd"),
         calls=[("run_in_terminal", {"command": "pwd"})], thinking_open=True),
    Case("qwen35-empty-args", "Qwen3.5-4B", "<tool_call>\n<function=empty_args>\n</function>\n</tool_call>",
         calls=[("empty_args", {})]),
    Case("qwen35-empty-thinking", "Qwen3.5-4B", "</think>\n\n" + _xml("special_function", arg1="1"),
         calls=[CALL_1], thinking_open=True),
    Case("qwen35-reopened-thinking", "Qwen3.5-4B", "<think>\n\n</think>\n\n" + _xml("special_function", arg1="1"),
         calls=[CALL_1], thinking_open=True),
    # Qwen 2.5 / Qwen 3 / Hermes (test-chat.cpp "MiMo-VL / Hermes 3 / Qwen 2.5", "Hermes-2-Pro")
    Case("qwen25-call", "Qwen-Qwen2.5-7B-Instruct",
         '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}\n</tool_call>', calls=[CALL_1]),
    Case("qwen25-text", "Qwen-Qwen2.5-7B-Instruct", HELLO, HELLO),
    Case("hermes2-content-then-call", "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
         'Hello, world!\nWhat\'s up?<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}</tool_call>',
         HELLO, calls=[CALL_1]),
    Case("qwen3-thinking-call", "Qwen-Qwen3-0.6B",
         '<think>\nI\'m\nthinking\n</think>\n\n<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}\n'
         '</tool_call>', reasoning=THOUGHT, calls=[CALL_1]),
    Case("qwen3-two-calls", "Qwen-Qwen3-0.6B",
         '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}\n</tool_call>\n<tool_call>\n'
         '{"name": "get_time", "arguments": {"city": "Paris"}}\n</tool_call>',
         calls=[CALL_1, ("get_time", {"city": "Paris"})]),
    Case("smollm3-thinking-text", "HuggingFaceTB-SmolLM3-3B", "<think>\nI'm\nthinking\n</think>\nHello, world!\nWhat's up?",
         HELLO, THOUGHT),
    Case("smollm3-call", "HuggingFaceTB-SmolLM3-3B",
         '<tool_call>\n{"name": "get_time", "arguments": {"city": "Paris"}}\n</tool_call>',
         calls=[("get_time", {"city": "Paris"})]),
    # Llama 3.1 / 3.2 (test-chat.cpp, Llama 3.x cases of earlier llama.cpp versions)
    Case("llama31-json", "meta-llama-Llama-3.1-8B-Instruct", '{"name": "special_function", "parameters": {"arg1": 1}}',
         calls=[CALL_1]),
    Case("llama32-json-typed", "meta-llama-Llama-3.2-3B-Instruct",
         '{"type": "function", "name": "special_function", "parameters": {"arg1": 1}}', calls=[CALL_1]),
    Case("llama31-python-tag", "meta-llama-Llama-3.1-8B-Instruct", "<|python_tag|>python.call(code=\"print('hey')\")",
         calls=[("python", {"code": "print('hey')"})]),
    Case("llama31-python-tag-code", "meta-llama-Llama-3.1-8B-Instruct", "<|python_tag|>print('hey')",
         calls=[("python", {"code": "print('hey')"})]),
    Case("llama32-text", "meta-llama-Llama-3.2-3B-Instruct", HELLO, HELLO),
    # Mistral (test-chat.cpp "Mistral-Nemo-Instruct-2407", "Devstral", "Mistral Small 3.2")
    Case("mistral-nemo-call", "mistralai-Mistral-Nemo-Instruct-2407",
         '[TOOL_CALLS][{"name": "special_function", "arguments": {"arg1": 1}, "id": "123456789"}]', calls=[CALL_1]),
    Case("mistral-nemo-text", "mistralai-Mistral-Nemo-Instruct-2407", HELLO, HELLO),
    Case("devstral-call", "unsloth-mistral-Devstral-Small-2507", '[TOOL_CALLS]special_function[ARGS]{"arg1": 1}',
         calls=[CALL_1]),
    Case("devstral-content-then-call", "unsloth-mistral-Devstral-Small-2507",
         'Hello, world!\nWhat\'s up?[TOOL_CALLS]special_function[ARGS]{"arg1": 1}', HELLO, calls=[CALL_1]),
    Case("mistral-small-call-ids", "unsloth-mistral-Devstral-Small-2507",
         '[TOOL_CALLS]special_function[CALL_ID]000000001[ARGS]{"arg1": 1}'
         '[TOOL_CALLS]special_function_with_opt[CALL_ID]000000002[ARGS]{"arg1": 1, "arg2": 2}',
         calls=[CALL_1, ("special_function_with_opt", {"arg1": 1, "arg2": 2})]),
    # Phi-4-mini (its model card's function-calling format, as BFCL's handler parses it)
    Case("phi4-call", "microsoft-Phi-4-mini-instruct",
         '<|tool_call|>[{"name": "special_function", "arguments": {"arg1": 1}}]<|/tool_call|>', calls=[CALL_1]),
    Case("phi4-parallel", "microsoft-Phi-4-mini-instruct",
         'Checking.<|tool_call|>[{"name": "special_function", "arguments": {"arg1": 1}}, '
         '{"name": "get_time", "arguments": {"city": "Oslo"}}]<|/tool_call|>',
         "Checking.", calls=[CALL_1, ("get_time", {"city": "Oslo"})]),
    # LFM2 / LFM2.5 (test-chat.cpp test_lfm2_parser and the LFM2.5-8B-A1B thinking cases)
    Case("lfm2-call", "LFM2-8B-A1B", "<|tool_call_start|>[special_function(arg1=1)]<|tool_call_end|>", calls=[CALL_1]),
    Case("lfm25-string", "LFM2.5-Instruct", '<|tool_call_start|>[get_time(city="XYZCITY")]<|tool_call_end|>',
         calls=[("get_time", {"city": "XYZCITY"})]),
    Case("lfm25-python-literals", "LFM2.5-Instruct", "<|tool_call_start|>[toggle(enabled=True)]<|tool_call_end|>",
         calls=[("toggle", {"enabled": True})]),
    Case("lfm25-nested", "LFM2.5-Instruct",
         '<|tool_call_start|>[set_config(config={"enabled": True, "count": 3})]<|tool_call_end|>',
         calls=[("set_config", {"config": {"enabled": True, "count": 3}})]),
    Case("lfm25-escapes", "LFM2.5-Instruct",
         "<|tool_call_start|>[python(code=\"def hello():\\n    print('hey')\")]<|tool_call_end|>",
         calls=[("python", {"code": "def hello():\n    print('hey')"})]),
    Case("lfm25-parallel", "LFM2.5-Instruct",
         "<|tool_call_start|>[special_function(arg1=1), special_function_with_opt(arg1=1, arg2=2)]<|tool_call_end|>",
         calls=[CALL_1, ("special_function_with_opt", {"arg1": 1, "arg2": 2})]),
    Case("lfm25-markdown-links", "LFM2.5-Instruct",
         "Use this format: [link text](url). Example: [Wikipedia](https://www.wikipedia.org).",
         "Use this format: [link text](url). Example: [Wikipedia](https://www.wikipedia.org)."),
    Case("lfm25-empty-args", "LFM2.5-Instruct", "<|tool_call_start|>[empty_args()]<|tool_call_end|>",
         calls=[("empty_args", {})]),
    Case("lfm25-thinking-content-call", "LFM2.5-8B-A1B",
         '<think>I need to call a function</think>Let me check the time.<|tool_call_start|>[get_time(city="Paris")]'
         "<|tool_call_end|>", "Let me check the time.", "I need to call a function", calls=[("get_time", {"city": "Paris"})]),
    Case("lfm25-fake-call-in-thinking", "LFM2.5-8B-A1B",
         "<think>Let me think about <|tool_call_start|>[special_function(arg1=1)]<|tool_call_end|> hmm</think>"
         "<|tool_call_start|>[special_function(arg1=1)]<|tool_call_end|>",
         reasoning="Let me think about <|tool_call_start|>[special_function(arg1=1)]<|tool_call_end|> hmm",
         calls=[CALL_1]),
    # Gemma 3 (no native tools: the generic JSON object it is told about) and the generic fallback
    Case("gemma3-json", "google-gemma-3-4b-it", '{"name": "special_function", "arguments": {"arg1": 1}}',
         calls=[CALL_1]),
    Case("gemma3-fenced", "google-gemma-3-4b-it",
         'Sure.\n```json\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n```', "Sure.",
         calls=[("get_time", {"city": "Oslo"})]),
    Case("gemma3-no-template", "", '{"name": "special_function", "arguments": {"arg1": 1}}', calls=[CALL_1],
         architecture="gemma3"),
    Case("generic-json-in-text", "microsoft-Phi-3.5-mini-instruct",
         'The city {"name": "Paris"} has a time: {"name": "get_time", "arguments": {"city": "Paris"}}',
         'The city {"name": "Paris"} has a time:', calls=[("get_time", {"city": "Paris"})]),
    Case("generic-text", "microsoft-Phi-3.5-mini-instruct", HELLO, HELLO),
]

# Malformed calls: every one must come back as text, word for word (only edge whitespace may go).
MALFORMED: list[tuple[str, str, str]] = [
    ("qwen35-unknown-function", "Qwen3.5-4B", "Let me see. " + _xml("no_such_function", x="1")),
    ("qwen35-not-a-call", "Qwen3.5-4B", "Write <tool_call> tags like this, not like that."),
    ("hermes-unknown-function", "Qwen-Qwen3-0.6B",
     'Calling <tool_call>\n{"name": "nope", "arguments": {"arg1": 1}}\n</tool_call> done'),
    ("hermes-not-json", "Qwen-Qwen3-0.6B", "Use <tool_call> then your call."),
    ("llama3-unknown", "meta-llama-Llama-3.2-3B-Instruct", '{"name": "Paris", "country": "France"}'),
    ("mistral-broken", "mistralai-Mistral-Nemo-Instruct-2407", "[TOOL_CALLS] is how I call tools."),
    ("devstral-unknown", "unsloth-mistral-Devstral-Small-2507", '[TOOL_CALLS]nope[ARGS]{"arg1": 1}'),
    ("phi4-unknown", "microsoft-Phi-4-mini-instruct", '<|tool_call|>[{"name": "nope", "arguments": {}}]<|/tool_call|>'),
    ("lfm2-positional", "LFM2.5-Instruct", "<|tool_call_start|>[get_time('Paris')]<|tool_call_end|>"),
    ("lfm2-variable", "LFM2.5-Instruct", "<|tool_call_start|>[get_time(city=paris)]<|tool_call_end|>"),
    ("generic-fence-not-call", "google-gemma-3-4b-it", 'Here:\n```json\n{"a": 1}\n```'),
]

# Broken argument JSON after a known name: text when arguments are not streamed (with streaming the call is
# committed once its name is out, and the lazy grammar is what keeps it well-formed).
BROKEN_JSON: list[tuple[str, str, str]] = [
    ("hermes-broken-args", "Qwen-Qwen2.5-7B-Instruct",
     '<tool_call>\n{"name": "special_function", "arguments": {"arg1": }}\n</tool_call>'),
    ("phi4-broken-args", "microsoft-Phi-4-mini-instruct",
     '<|tool_call|>[{"name": "special_function", "arguments": {"arg1": 1,}}]<|/tool_call|>'),
    ("qwen35-cut-off", "Qwen3.5-4B", "<tool_call>\n<function=special_function>\n<parameter=arg1>\n1"),
]
