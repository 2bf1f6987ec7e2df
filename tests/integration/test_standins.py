"""Random-weight stand-ins of catalog models (issue 18 item 1): real llama.cpp loads and runs them.

Each supported family's ``--tiny`` stand-in is built through the CLI into the test's own store, loaded
by llama.cpp, read back with ``model_info``, and decoded greedily; the full-size stand-in is built only
for the smallest catalog model (SmolLM2 135M, a few seconds).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import llama_cpp
import pytest
from click.testing import CliRunner

from slmnode.catalog.families import FAMILIES
from slmnode.catalog.model_info import model_info
from slmnode.catalog.resolve import resolve_family
from slmnode.catalog.standin import ARCH_DEFAULTS, STANDIN_SUFFIX, tensor_shapes, tiny_family
from slmnode.catalog.store import ModelStore
from slmnode.cli import main

# one catalog model per supported architecture
FAMILY_MODELS = ["llama3.2:1b", "smollm2:360m", "gemma3:1b", "qwen2.5:0.5b", "qwen3:0.6b"]
PROMPT = "The quick brown fox jumps over the lazy dog. " * 2  # longer than the tiny SWA window (32)


def _cli(*args: str) -> dict:
    result = CliRunner().invoke(main, ["models", "standin", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def _greedy(path: Path, n: int = 8) -> list[int]:
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=1, verbose=False)
    try:
        tokens = llm.tokenize(PROMPT.encode())
        out: list[int] = []
        for tok in llm.generate(tokens, temp=0.0, top_k=1):
            out.append(tok)
            if len(out) == n:
                break
        return out
    finally:
        llm.close()


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_tiny_standin_loads_matches_shape_and_decodes_deterministically(name: str) -> None:
    manifest = _cli(name, "--tiny", "--quant", "Q4_K_M", "--seed", "7")
    store = ModelStore()
    assert manifest["name"] == f"{name}-standin-tiny" and manifest["standin"] is True
    path = store.path_of(store.get(manifest["name"]))
    want = tiny_family(resolve_family(name))
    info = model_info(path)
    assert info.architecture == want.architecture
    assert (info.block_count, info.embedding_length, info.head_count, info.head_count_kv, info.key_length,
            info.vocab_size, info.sliding_window) == (want.n_layers, want.n_embd, want.n_head, want.n_head_kv,
                                                      want.head_dim, want.vocab, want.sliding_window)
    assert info.name is not None and info.name.endswith(STANDIN_SUFFIX)
    assert info.has_chat_template == (ARCH_DEFAULTS[want.architecture].template is not None
                                      and not want.key.startswith("smollm"))
    first = _greedy(path)
    assert len(first) == 8
    # same seed: the same file, byte for byte, and the same greedy continuation
    again = _cli(name, "--tiny", "--quant", "Q4_K_M", "--seed", "7")
    assert again["sha256"] == manifest["sha256"]
    assert _greedy(path) == first
    other = _cli(name, "--tiny", "--quant", "Q4_K_M", "--seed", "8")
    assert other["sha256"] != manifest["sha256"]
    listed = CliRunner().invoke(main, ["models", "list", "--json"])
    by_name = {m["name"]: m for m in json.loads(listed.stdout)}
    assert by_name[f"{name}-standin-tiny"]["standin"] is True
    assert [m for m, v in by_name.items() if v["standin"]] == [f"{name}-standin-tiny"]  # embedded ones are not
    table = CliRunner().invoke(main, ["models", "list"])
    assert table.stdout.count("(stand-in)") == 1


@pytest.mark.parametrize("family", [f for f in FAMILIES if f.architecture in ARCH_DEFAULTS], ids=lambda f: f.key)
def test_standin_shapes_add_up_to_the_catalog_parameter_count(family) -> None:  # type: ignore[no-untyped-def]
    n = sum(math.prod(shape) for _, shape in tensor_shapes(family))
    if family.key == "gemma3-4b":  # the catalog's count is for a 262144 vocabulary, its vocab says 262208
        assert n - family.params == (262208 - 262144) * family.n_embd
    else:
        assert n == family.params


def test_full_size_standin_of_the_smallest_model() -> None:
    manifest = _cli("smollm2:135m", "--quant", "Q4_K_M")
    path = ModelStore().path_of(ModelStore().get("smollm2:135m-standin"))
    info = model_info(path)
    family = resolve_family("smollm2:135m")
    assert info.parameter_count == family.params
    assert (info.block_count, info.embedding_length, info.vocab_size) == (family.n_layers, family.n_embd, family.vocab)
    assert info.quant_type == "Q4_K_M" and manifest["standin"] is True
    assert len(_greedy(path, 4)) == 4


def test_unsupported_architecture_is_refused_with_the_supported_list() -> None:
    result = CliRunner().invoke(main, ["models", "standin", "phi4-mini", "--tiny"])
    assert result.exit_code != 0
    assert "not supported" in result.output and "gemma3" in result.output
