"""Prompt rendering: Gemma turns, system text kept, tool history, GGUF templates."""

from __future__ import annotations

import dataclasses

import pytest

from slmnode.catalog.model_info import ModelInfo
from slmnode.engine.chat_format import known_format, render_chat
from slmnode.errors import RequestError


def info(**kw: object) -> ModelInfo:
    base = dict(path="x.gguf", size_bytes=1, architecture="gemma3", name=None, size_label=None, parameter_count=1,
                quant_type="Q4_K_M", context_length=32768, block_count=18, embedding_length=640, head_count=4,
                head_count_kv=1, key_length=256, value_length=256, sliding_window=512, vocab_size=262144,
                has_chat_template=False, chat_template=None, bos_token="<bos>", eos_token="<eos>", eot_token=None)
    base.update(kw)
    return ModelInfo(**base)  # type: ignore[arg-type]


GEMMA = info()


def test_gemma_turns_and_system_at_head_of_first_user_turn() -> None:
    r = render_chat(GEMMA, [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}])
    assert r.prompt == "<start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert "<end_of_turn>" in r.stop and r.format == "gemma"


def test_multi_turn_gemma() -> None:
    r = render_chat(GEMMA, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                            {"role": "user", "content": "c"}])
    assert r.prompt == ("<start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\nb<end_of_turn>\n"
                        "<start_of_turn>user\nc<end_of_turn>\n<start_of_turn>model\n")


def test_tool_history_with_null_content_renders() -> None:
    msgs = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "21C"}]
    fns = [{"name": "get_weather", "description": "", "parameters": {"type": "object"}}]
    r = render_chat(GEMMA, msgs, fns)
    assert '{"name": "get_weather", "arguments": {"city": "Oslo"}}' in r.prompt
    assert "Result of get_weather: 21C" in r.prompt
    assert '"name": "get_weather"' in r.prompt.split("<start_of_turn>model")[0]  # tool list in first turn


@pytest.mark.parametrize("eot,arch,fmt", [("<|im_end|>", "llama", "chatml"), ("<|eot_id|>", "llama", "llama3"),
                                          ("<|end|>", "phi3", "phi3"), (None, "qwen2", "chatml"), (None, "gemma3", "gemma")])
def test_known_format_by_end_token_then_architecture(eot: str | None, arch: str, fmt: str) -> None:
    assert known_format(info(eot_token=eot, architecture=arch)) == fmt


def test_chatml_keeps_system_role() -> None:
    r = render_chat(info(architecture="qwen2", eot_token="<|im_end|>"), [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert r.prompt.startswith("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n")


def test_gguf_template_is_used_and_bos_stripped() -> None:
    tpl = "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
    r = render_chat(dataclasses.replace(GEMMA, chat_template=tpl, has_chat_template=True),
                    [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert r.prompt == "[system]S[user]U[assistant]" and r.format == "gguf-template"


def test_template_that_raises_falls_back_to_known_format() -> None:
    tpl = "{{ raise_exception('System role not supported') }}"
    r = render_chat(dataclasses.replace(GEMMA, chat_template=tpl), [{"role": "user", "content": "U"}])
    assert r.format == "gemma"


@pytest.mark.parametrize("messages", [[], [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
                                      [{"role": "robot", "content": "x"}], [{"role": "user", "content": 5}]])
def test_bad_messages_raise_request_error(messages: list) -> None:
    with pytest.raises(RequestError):
        render_chat(GEMMA, messages)


def test_plain_format_can_be_forced_for_base_models() -> None:
    r = render_chat(GEMMA, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
                    chat_format="plain")
    assert r.prompt == "Be brief.\nUser: Capital of France?\nAssistant:"
    assert "\nUser:" in r.stop and r.format == "plain"


def test_forced_format_beats_gguf_template_and_unknown_is_rejected() -> None:
    tpl_model = dataclasses.replace(GEMMA, chat_template="{{ messages }}")
    assert render_chat(tpl_model, [{"role": "user", "content": "x"}], chat_format="chatml").format == "chatml"
    with pytest.raises(RequestError, match="plain"):
        render_chat(GEMMA, [{"role": "user", "content": "x"}], chat_format="vicuna")


@pytest.mark.parametrize("model,fmt", [(GEMMA, "gemma"), (info(architecture="qwen2", eot_token="<|im_end|>"), "chatml"),
                                       (info(architecture="llama", eot_token="<|eot_id|>"), "llama3"),
                                       (GEMMA, "plain")])
def test_the_shared_prefix_hint_ends_where_the_last_message_begins(model: ModelInfo, fmt: str) -> None:
    system = {"role": "system", "content": "You are a careful agent. " * 20}
    a = render_chat(model, [system, {"role": "user", "content": "What is 2+2?"}], chat_format=fmt)
    b = render_chat(model, [system, {"role": "user", "content": "Name a colour."}], chat_format=fmt)
    assert a.prompt[a.shared_prefix_chars:].startswith("What is 2+2?")
    # two tasks of one agent share exactly that much: the engine keeps a cache entry cut there
    assert a.prompt[: a.shared_prefix_chars] == b.prompt[: b.shared_prefix_chars]
    assert a.shared_prefix_chars > len(system["content"])


def test_the_shared_prefix_hint_is_zero_when_the_last_text_is_not_in_the_prompt() -> None:
    r = render_chat(GEMMA, [{"role": "user", "content": ""}])
    assert r.shared_prefix_chars == 0
