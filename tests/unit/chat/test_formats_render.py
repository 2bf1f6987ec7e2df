"""Format detection on the real templates, and rendering a tool conversation through each of them."""

from __future__ import annotations

import json

import pytest

from slmnode.chat.formats import detect, render
from slmnode.chat.formats.render import caps_of
from slmnode.chat.types import Message, ToolCall, ToolSpec
from slmnode.errors import RequestError
from tests.unit.chat.cases import TEMPLATES, template

DETECTED = {
    "Qwen3.5-4B": "qwen-xml",
    "Qwen3-Coder": "qwen-xml",
    "Qwen-Qwen3-0.6B": "hermes",
    "Qwen-Qwen2.5-7B-Instruct": "hermes",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use": "hermes",
    "HuggingFaceTB-SmolLM3-3B": "hermes",
    "meta-llama-Llama-3.1-8B-Instruct": "llama3",
    "meta-llama-Llama-3.2-3B-Instruct": "llama3",
    "mistralai-Mistral-Nemo-Instruct-2407": "mistral",
    "unsloth-mistral-Devstral-Small-2507": "mistral-args",
    "microsoft-Phi-4-mini-instruct": "phi4",
    "LFM2-8B-A1B": "lfm2",
    "LFM2.5-Instruct": "lfm2",
    "LFM2.5-8B-A1B": "lfm2",
    "google-gemma-3-4b-it": "gemma",
    "google-gemma-2-2b-it": "gemma",
    "microsoft-Phi-3.5-mini-instruct": "generic",
}


def test_every_template_file_is_in_the_table() -> None:
    assert sorted(p.stem for p in TEMPLATES.glob("*.jinja")) == sorted(DETECTED)


@pytest.mark.parametrize("name,family", DETECTED.items())
def test_detect_by_template_markers(name: str, family: str) -> None:
    assert detect(template(name), "llama").family == family  # markers win over the architecture


@pytest.mark.parametrize("arch,family", [("gemma3", "gemma"), ("qwen35", "qwen-xml"), ("qwen3", "hermes"),
                                         ("lfm2", "lfm2"), ("llama", "generic"), ("bert", "generic")])
def test_detect_without_template_by_architecture(arch: str, family: str) -> None:
    assert detect(None, arch).family == family


SMOLLM2_CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                  "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                  "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                  "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                  "{% endif %}")


def test_plain_chatml_template_is_generic() -> None:
    """A ChatML template without tool markers (SmolLM2-Instruct's) gets the generic format, not SmolLM3's."""
    spec = detect(SMOLLM2_CHATML, "llama")
    assert spec.family == "generic" and "<|im_end|>" in spec.stop


WEATHER = ToolSpec("get_weather", "Weather of a city",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
CLOCK = ToolSpec("get_clock_time", "Local time", {"type": "object", "properties": {"tz": {"type": "string"}}})
CONVERSATION = [
    Message("system", "Be brief."),
    Message("user", "Weather in Oslo?"),
    Message("assistant", "", reasoning="The user wants weather.",
            tool_calls=(ToolCall("call_abc123", "get_weather", '{"city": "Oslo-Blindern"}'),)),
    Message("tool", "21C and sunny", tool_call_id="call_abc123"),
]


@pytest.mark.parametrize("name", sorted(DETECTED))
def test_renders_tools_calls_and_results(name: str) -> None:
    src = template(name)
    spec = detect(src, "")
    r = render(spec, src, CONVERSATION, [WEATHER, CLOCK], bos_token="<s>", eos_token="</s>")
    assert "get_weather" in r.prompt and "get_clock_time" in r.prompt  # the tools
    assert "Oslo-Blindern" in r.prompt  # the earlier call's arguments
    assert "21C and sunny" in r.prompt  # the tool result
    assert "&lt;" not in r.prompt and "&#34;" not in r.prompt  # no HTML escaping from Jinja's tojson
    assert not r.prompt.startswith("<s>")  # the tokenizer adds BOS
    assert set(spec.stop) <= set(r.stop)


@pytest.mark.parametrize("name", ["Qwen3.5-4B", "Qwen-Qwen3-0.6B", "Qwen-Qwen2.5-7B-Instruct",
                                  "meta-llama-Llama-3.1-8B-Instruct", "mistralai-Mistral-Nemo-Instruct-2407",
                                  "unsloth-mistral-Devstral-Small-2507", "LFM2.5-8B-A1B"])
def test_native_templates_render_tools_and_calls_themselves(name: str) -> None:
    src = template(name)
    caps = caps_of(src)
    assert caps.tools and caps.tool_calls
    r = render(detect(src, ""), src, CONVERSATION, [WEATHER])
    assert r.native_tools
    assert "Result of get_weather" not in r.prompt  # the tool result went through the template's tool role


def test_qwen35_renders_calls_as_xml_with_object_arguments() -> None:
    src = template("Qwen3.5-4B")
    r = render(detect(src, ""), src, CONVERSATION, [WEATHER])
    assert "<tool_call>\n<function=get_weather>\n<parameter=city>\nOslo-Blindern\n</parameter>" in r.prompt
    assert "<tool_response>\n21C and sunny\n</tool_response>" in r.prompt


@pytest.mark.parametrize("thinking,opened", [(None, True), (True, True), (False, False)])
def test_qwen35_opens_thinking_in_the_prompt(thinking: bool | None, opened: bool) -> None:
    src = template("Qwen3.5-4B")
    r = render(detect(src, ""), src, [Message("user", "Hi")], enable_thinking=thinking)
    assert r.thinking_open is opened
    assert r.prompt.endswith("<think>\n") if opened else r.prompt.endswith("<think>\n\n</think>\n\n")


@pytest.mark.parametrize("thinking", [None, True, False])
def test_qwen3_never_opens_thinking_in_the_prompt(thinking: bool | None) -> None:
    src = template("Qwen-Qwen3-0.6B")
    assert not render(detect(src, ""), src, [Message("user", "Hi")], enable_thinking=thinking).thinking_open


def test_gemma3_tool_prompt_and_history_in_alternating_turns() -> None:
    """No system role in practice, no tools, strict alternation: the tool prompt heads the first user turn,
    the call is the generic JSON object in the model turn, the result is a user turn."""
    src = template("google-gemma-3-4b-it")
    r = render(detect(src, "gemma3"), src, CONVERSATION, [WEATHER], bos_token="<bos>")
    assert not r.native_tools
    first_user = r.prompt.split("<end_of_turn>")[0]
    assert "Be brief." in first_user and '"name": "get_weather"' in first_user and "Weather in Oslo?" in first_user
    assert '<start_of_turn>model\n{"name": "get_weather", "arguments": {"city": "Oslo-Blindern"}}' in r.prompt
    assert "<start_of_turn>user\nResult of get_weather: 21C and sunny<end_of_turn>" in r.prompt
    assert r.prompt.endswith("<start_of_turn>model\n")


def test_gemma_without_template_uses_gemma3_turns() -> None:
    r = render(detect(None, "gemma3"), None, [Message("system", "S"), Message("user", "Hi")], bos_token="<bos>")
    assert r.prompt == "<start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_phi4_tools_go_in_the_system_message_tools_key() -> None:
    src = template("microsoft-Phi-4-mini-instruct")
    r = render(detect(src, "phi3"), src, [Message("user", "Weather?")], [WEATHER])
    head = r.prompt.split("<|end|>")[0]
    assert head.startswith("<|system|>") and "<|tool|>[" in head and head.endswith("]<|/tool|>")
    assert json.loads(head[head.index("<|tool|>") + 8: -len("<|/tool|>")])[0]["name"] == "get_weather"


def test_mistral_ids_are_nine_alphanumerics() -> None:
    src = template("mistralai-Mistral-Nemo-Instruct-2407")
    r = render(detect(src, ""), src, CONVERSATION, [WEATHER])
    start = r.prompt.index('"id": "') + 7
    call_id = r.prompt[start:start + 9]
    assert call_id.isalnum() and r.prompt[start + 9] == '"'
    assert f'"call_id": "{call_id}"' in r.prompt


def test_smollm3_gets_a_hermes_tool_prompt() -> None:
    src = template("HuggingFaceTB-SmolLM3-3B")
    r = render(detect(src, "smollm3"), src, [Message("user", "Weather?")], [WEATHER])
    assert not r.native_tools and "<tool_call>" in r.prompt and '"name": "get_weather"' in r.prompt


def test_template_refusing_the_conversation_is_a_request_error() -> None:
    src = template("mistralai-Mistral-Nemo-Instruct-2407")
    with pytest.raises(RequestError):
        render(detect(src, ""), src, [Message("assistant", "x"), Message("assistant", "y"), Message("user", "z")])


def test_shared_prefix_ends_where_the_last_message_begins() -> None:
    src = template("Qwen-Qwen3-0.6B")
    r = render(detect(src, ""), src, [Message("system", "Be brief."), Message("user", "Hello there")])
    assert r.prompt[r.shared_prefix_chars:].startswith("Hello there<|im_end|>")


@pytest.mark.parametrize("name", ["meta-llama-Llama-3.1-8B-Instruct", "meta-llama-Llama-3.2-3B-Instruct"])
def test_llama3_parallel_calls_in_history_render_one_per_turn(name: str) -> None:
    """Llama 3.x templates raise on an assistant turn with two calls: each call gets its own turn."""
    src = template(name)
    calls = (ToolCall("call_1", "get_weather", '{"city": "Oslo"}'), ToolCall("call_2", "get_weather", '{"city": "Bergen"}'))
    conv = [Message("user", "Oslo and Bergen?"), Message("assistant", "", tool_calls=calls),
            Message("tool", "21C", tool_call_id="call_1"), Message("tool", "12C", tool_call_id="call_2")]
    r = render(detect(src, ""), src, conv, [WEATHER])
    assert r.prompt.index('"city": "Oslo"') < r.prompt.index('"city": "Bergen"') < r.prompt.index("21C")
