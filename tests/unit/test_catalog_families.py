"""The model catalog: names as people write them, quant bits per weight, architecture facts."""

from __future__ import annotations

import pytest

from slmnode.catalog.families import BY_KEY, FAMILIES
from slmnode.catalog.quants import QUANTS, get_quant
from slmnode.catalog.resolve import resolve_family, split_quant
from slmnode.errors import ConfigError, ModelNotFound

NAMES = [
    ("qwen2.5-0.5b-instruct", "qwen2.5-0.5b-instruct", None),
    ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "qwen2.5-0.5b-instruct", "Q4_K_M"),
    ("qwen2.5:0.5b", "qwen2.5-0.5b-instruct", None),
    ("gemma3-1b", "gemma3-1b", None),
    ("gemma-3-1b-it", "gemma3-1b", None),
    ("gemma3:270m-pt-q4_k_m", "gemma3-270m", "Q4_K_M"),
    ("llama3.2-1b", "llama3.2-1b", None),
    ("Llama-3.2-3B-Instruct-Q8_0", "llama3.2-3b", "Q8_0"),
    ("bartowski/Phi-4-mini-instruct", "phi4-mini", None),
    ("SmolLM2-360M-Instruct", "smollm2-360m", None),
    ("Qwen3-30B-A3B", "qwen3-30b-a3b", None),
    ("qwen3.5-0.8b", "qwen3.5-0.8b", None),
]


@pytest.mark.parametrize(("name", "key", "quant"), NAMES)
def test_resolve(name: str, key: str, quant: str | None) -> None:
    assert resolve_family(name).key == key
    assert split_quant(name)[1] == quant


def test_unknown_name_lists_known() -> None:
    with pytest.raises(ModelNotFound, match="qwen2.5-0.5b-instruct"):
        resolve_family("mistral-7b")


def test_issue_families_present() -> None:
    wanted = {"gemma3-270m", "gemma3-1b", "gemma3-4b", "gemma3-12b", "qwen3.5-0.8b", "qwen3.5-2b",
              "qwen3.5-4b", "qwen3-0.6b", "qwen3-30b-a3b", "qwen2.5-0.5b-instruct",
              "qwen2.5-1.5b-instruct", "qwen2.5-3b-instruct", "qwen2.5-7b-instruct", "llama3.2-1b",
              "llama3.2-3b", "phi3.5-mini", "phi4-mini", "smollm2-135m", "smollm2-360m", "smollm2-1.7b"}
    assert wanted <= set(BY_KEY)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.key)
def test_family_facts_consistent(family) -> None:  # type: ignore[no-untyped-def]
    assert family.n_head % family.n_head_kv == 0  # grouped-query attention divides evenly
    assert family.params > family.vocab * family.n_embd  # embeddings are part of the count
    if family.n_expert:
        assert family.params_active and family.params_active < family.params / 5


def test_gemma3_layout_matches_llama_cpp() -> None:
    # llama.cpp logs is_swa = 0 for layers 5, 11, 17 of the 18-layer 270M model.
    g = BY_KEY["gemma3-270m"]
    assert g.n_swa_layers == 15 and g.n_kv_layers == 18


def test_qwen35_is_hybrid() -> None:
    assert BY_KEY["qwen3.5-0.8b"].n_kv_layers == 6  # 1 attention layer per 4


def test_quants() -> None:
    need = ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ3_XS", "IQ3_M", "IQ4_XS", "IQ4_NL", "Q4_0",
            "Q4_1", "Q4_K_S", "Q4_K_M", "Q5_0", "Q5_1", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "F16"]
    assert list(QUANTS) == need
    assert get_quant("q4_k_m").block_bpw == 4.5  # 144 bytes per 256 weights
    assert get_quant("Q8_0").block_bpw == 8.5  # 34 bytes per 32 weights
    assert get_quant("Q6_K").block_bpw == 6.5625
    for q in QUANTS.values():
        assert q.file_bpw >= q.block_bpw - 0.3  # a file never averages far below its base type
    with pytest.raises(ConfigError, match="Q4_K_M"):
        get_quant("Q4_K_X")
