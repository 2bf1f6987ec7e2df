"""Alias table and name resolution for ``slmnode pull`` (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slmnode.catalog.aliases import ALIASES, LATEST, resolve_target, split_alias
from slmnode.catalog.families import BY_KEY
from slmnode.catalog.pull import RamFit, _pick_by_quant, check_disk, check_ram
from slmnode.catalog.quants import QUANTS
from slmnode.cli.pull import parse_size
from slmnode.errors import ConfigError, ModelNotFound

GiB = 1 << 30


@pytest.mark.parametrize(("name", "quant", "repo", "filename", "names", "source"), [
    ("qwen3.5:2b", None, "unsloth/Qwen3.5-2B-GGUF", "Qwen3.5-2B-Q4_K_M.gguf",
     ("qwen3.5:2b-q4_k_m", "qwen3.5:2b"), "fallback"),
    ("qwen3.5:2b-q4_k_s", None, "unsloth/Qwen3.5-2B-GGUF", "Qwen3.5-2B-Q4_K_S.gguf", ("qwen3.5:2b-q4_k_s",), "given"),
    ("qwen3.5:2b", "q8_0", "unsloth/Qwen3.5-2B-GGUF", "Qwen3.5-2B-Q8_0.gguf", ("qwen3.5:2b-q8_0",), "given"),
    ("gemma3:1b", None, "unsloth/gemma-3-1b-it-GGUF", "gemma-3-1b-it-Q4_K_M.gguf",
     ("gemma3:1b-q4_k_m", "gemma3:1b"), "fallback"),
    ("gemma3:1b-it-q4_K_M", None, "unsloth/gemma-3-1b-it-GGUF", "gemma-3-1b-it-Q4_K_M.gguf",
     ("gemma3:1b-q4_k_m",), "given"),
    ("llama3.2:3b-q4_k_m", None, "bartowski/Llama-3.2-3B-Instruct-GGUF", "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
     ("llama3.2:3b-q4_k_m",), "given"),
    ("llama3.2:3b-instruct-q4_K_M", None, "bartowski/Llama-3.2-3B-Instruct-GGUF",
     "Llama-3.2-3B-Instruct-Q4_K_M.gguf", ("llama3.2:3b-q4_k_m",), "given"),
    ("llama3.2", None, "bartowski/Llama-3.2-3B-Instruct-GGUF", "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
     ("llama3.2:3b-q4_k_m", "llama3.2:3b", "llama3.2"), "fallback"),
    ("qwen2.5:0.5b", None, "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf",
     ("qwen2.5:0.5b-q4_k_m", "qwen2.5:0.5b"), "fallback"),
    ("QWEN2.5:1.5B-Q8_0", None, "Qwen/Qwen2.5-1.5B-Instruct-GGUF", "qwen2.5-1.5b-instruct-q8_0.gguf",
     ("qwen2.5:1.5b-q8_0",), "given"),
    ("smollm2:135m", None, "bartowski/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct-Q4_K_M.gguf",
     ("smollm2:135m-q4_k_m", "smollm2:135m"), "fallback"),
    ("phi4-mini:3.8b", None, "unsloth/Phi-4-mini-instruct-GGUF", "Phi-4-mini-instruct-Q4_K_M.gguf",
     ("phi4-mini:3.8b-q4_k_m", "phi4-mini:3.8b"), "fallback"),
])
def test_alias_resolves_to_repo_file_and_store_names(name: str, quant: str | None, repo: str, filename: str,
                                                      names: tuple[str, ...], source: str) -> None:
    t = resolve_target(name, quant)
    assert (t.kind, t.repo, t.filename, t.names, t.quant_source) == ("hf", repo, filename, names, source)


def test_default_quant_comes_from_the_callable_and_keeps_the_short_name() -> None:
    seen = []

    def pick(alias):  # type: ignore[no-untyped-def]
        seen.append(alias.family)
        return "Q8_0", "planner for pi4-8gb"

    t = resolve_target("gemma3:270m", default_quant=pick)
    assert seen == ["gemma3-270m"]
    assert t.filename == "gemma-3-270m-it-Q8_0.gguf"
    assert t.names == ("gemma3:270m-q8_0", "gemma3:270m") and t.quant_source == "planner for pi4-8gb"
    # A quant in the name wins; the planner is not asked.
    assert resolve_target("gemma3:270m-q4_0", default_quant=pick).filename == "gemma-3-270m-it-Q4_0.gguf"
    assert seen == ["gemma3-270m"]
    # The planner has no answer -> Q4_K_M.
    assert resolve_target("gemma3:270m", default_quant=lambda a: None).quant == "Q4_K_M"


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_every_alias_has_catalog_facts_and_a_gguf_per_quant(alias: str) -> None:
    a = ALIASES[alias]
    assert a.family in BY_KEY, "the planner needs architecture facts for the RAM check"
    assert "Q4_K_M" in a.quants
    for q in a.quants:
        assert q in QUANTS
        fn = a.filename(q)
        assert fn.endswith(".gguf") and q.lower() in fn.lower()


def test_latest_names_point_at_real_aliases() -> None:
    assert all(v in ALIASES for v in LATEST.values())


@pytest.mark.parametrize(("name", "repo", "filename", "names", "revision"), [
    ("hf://unsloth/gemma-3-1b-it-GGUF/gemma-3-1b-it-Q4_K_M.gguf", "unsloth/gemma-3-1b-it-GGUF",
     "gemma-3-1b-it-Q4_K_M.gguf", ("gemma-3-1b-it-Q4_K_M",), "main"),
    ("hf://owner/repo@v1.0/sub/dir/model-Q8_0.gguf", "owner/repo", "sub/dir/model-Q8_0.gguf", ("model-Q8_0",), "v1.0"),
    ("hf://bartowski/Llama-3.2-1B-Instruct-GGUF", "bartowski/Llama-3.2-1B-Instruct-GGUF", None, (), "main"),
    ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_S", "bartowski/Llama-3.2-1B-Instruct-GGUF", None, (), "main"),
    ("https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf",
     "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf", ("qwen2.5-0.5b-instruct-q4_k_m",), "main"),
    ("https://huggingface.co/o/r/blob/abc123/m.gguf", "o/r", "m.gguf", ("m",), "abc123"),
])
def test_hub_names(name: str, repo: str, filename: str | None, names: tuple[str, ...], revision: str) -> None:
    t = resolve_target(name)
    assert (t.kind, t.repo, t.filename, t.names, t.revision) == ("hf", repo, filename, names, revision)


def test_quant_of_a_repo_only_name() -> None:
    assert resolve_target("hf.co/o/r:Q4_K_S").quant == "Q4_K_S"
    assert resolve_target("hf://o/r", "q5_k_m").quant == "Q5_K_M"
    assert resolve_target("hf://o/r/m-Q8_0.gguf").quant == "Q8_0"


def test_plain_url() -> None:
    t = resolve_target("https://example.org/models/tiny-Q4_K_M.gguf")
    assert (t.kind, t.url, t.names, t.quant) == ("url", "https://example.org/models/tiny-Q4_K_M.gguf",
                                                 ("tiny-Q4_K_M",), "Q4_K_M")


@pytest.mark.parametrize(("name", "quant", "error", "needle"), [
    ("qwen3.5:70b", None, ModelNotFound, "qwen3.5:0.8b, qwen3.5:2b, qwen3.5:4b"),
    ("nosuchmodel", None, ModelNotFound, "hf://owner/repo/file.gguf"),
    ("qwen2.5", None, ModelNotFound, "qwen2.5:0.5b"),  # Ollama's default tag (7b) is not in the table
    ("gemma3:1b-q4_k_m", "Q8_0", ConfigError, "give one"),
    ("gemma3:1b", "q4 k m", ConfigError, "invalid quant"),
    ("hf://justowner", None, ConfigError, "owner/repo"),
    ("hf://o/r/README.md", None, ConfigError, "not a .gguf"),
    ("http://example.org/m.gguf", None, ConfigError, "https"),
    ("https://example.org/m.bin", None, ConfigError, "does not name a .gguf"),
])
def test_bad_names_fail_with_a_fix(name: str, quant: str | None, error: type[Exception], needle: str) -> None:
    with pytest.raises(error) as info:
        resolve_target(name, quant)
    assert needle in str(info.value)


def test_split_alias_strips_variant_and_latest() -> None:
    assert split_alias("gemma3:1b-instruct")[0].name == "gemma3:1b"
    assert split_alias("smollm2:latest")[0].name == "smollm2:1.7b"


def test_pick_by_quant_from_a_repo_listing() -> None:
    files = ["mmproj-Q8_0.gguf", "M-Q4_K_M.gguf", "M-UD-Q4_K_XL.gguf", "M-Q8_0.gguf", "sub/M-IQ4_XS.gguf"]
    assert _pick_by_quant("o/r", files, "Q8_0") == "M-Q8_0.gguf"
    assert _pick_by_quant("o/r", files, "q4_k_m") == "M-Q4_K_M.gguf"
    assert _pick_by_quant("o/r", files, "IQ4_XS") == "sub/M-IQ4_XS.gguf"
    with pytest.raises(ModelNotFound, match="M-Q4_K_M.gguf"):
        _pick_by_quant("o/r", files, "Q2_K")


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("2G", 2 * GiB), ("500M", 500 << 20), ("1.5GiB", 3 * GiB // 2),
                                             ("10k", 10240), ("7", 7)])
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_disk_check_counts_what_is_left_to_download() -> None:
    ok = check_disk(800 << 20, free_bytes=2 * GiB, keep_free=1 * GiB, where=Path("/x"))
    assert ok.ok and ok.numbers["needed_bytes"] == (800 << 20) + GiB
    bad = check_disk(800 << 20, free_bytes=GiB, keep_free=1 * GiB, where=Path("/x"))
    assert not bad.ok and "--force" in bad.message and "1.00 GiB free" in bad.message
    assert check_disk(10, None, 0, Path("/x")).ok  # unknown free space is reported, not refused


def test_ram_check_message_carries_the_numbers() -> None:
    fit = RamFit(5 * GiB, 3 * GiB, "swap", 131072, "device pi4-4gb", "planner estimate",
                 {"weights": GiB, "kv_cache": 4 * GiB})
    c = check_ram(fit, "m")
    assert c is not None and not c.ok
    assert "5.00 GiB at ctx 131072" in c.message and "3.00 GiB available" in c.message
    assert "kv cache 4.00 GiB" in c.message and "swap" in c.message
    assert check_ram(None, "m") is None
