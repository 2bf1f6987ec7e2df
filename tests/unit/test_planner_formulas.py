"""Planner formulas against numbers worked by hand from the embedded model's GGUF metadata.

Embedded model (Gemma 3 270M Q4_K_M): 18 layers, 1 KV head, head dim 256 (K and V), sliding
window 512 on 15 of 18 layers, vocab 262,144, embedding 640. llama.cpp 0.3.36 reports, at load:
ctx 512 -> KV 1.50 + 7.50 MiB; ctx 4096 -> 12.00 + 60.00 MiB (non-SWA + SWA, full-size SWA cache).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slmnode.catalog.quants import get_quant
from slmnode.catalog.resolve import resolve_family
from slmnode.errors import ConfigError
from slmnode.planner.memory import MiB, estimate_ram, kv_cache_bytes, kv_split_fits
from slmnode.planner.model_facts import facts_from_family, facts_from_gguf
from slmnode.planner.profiles import PROFILES, DeviceProfile, get_profile
from slmnode.planner.speed import predict_speed


@pytest.fixture(scope="module")
def gemma(gemma_path: Path):  # type: ignore[no-untyped-def]
    return facts_from_gguf(gemma_path)


def test_facts_from_gguf(gemma) -> None:  # type: ignore[no-untyped-def]
    assert (gemma.n_layers, gemma.n_head_kv, gemma.head_dim_k, gemma.head_dim_v) == (18, 1, 256, 256)
    assert (gemma.n_kv_layers, gemma.n_swa_layers, gemma.sliding_window) == (18, 15, 512)
    assert gemma.vocab == 262144 and gemma.params == 268_098_176
    # Tied output: the whole file is streamed per token (the Q8_0 embedding is the output projection).
    assert gemma.read_bytes_per_token == gemma.weight_bytes == 246_587_904


@pytest.mark.parametrize(("ctx", "mib"), [(512, 9.0), (4096, 72.0), (8192, 144.0), (1000, 18.0)])
def test_kv_full_swa_cache(gemma, ctx: int, mib: float) -> None:  # type: ignore[no-untyped-def]
    # 2 (K,V) x 18 layers x cells x 1 head x 256 x 2 bytes; cells = ctx rounded up to 256
    assert kv_cache_bytes(gemma, ctx) == 2 * 18 * ((ctx + 255) // 256 * 256) * 256 * 2
    assert kv_cache_bytes(gemma, ctx) / MiB == mib


def test_kv_sliding_window_cache(gemma) -> None:  # type: ignore[no-untyped-def]
    # Without swa_full, the 15 SWA layers keep window + ubatch = 1024 cells.
    by_hand = (3 * 4096 + 15 * 1024) * 1 * 256 * 2 * 2
    assert kv_cache_bytes(gemma, 4096, swa_full=False) == by_hand == 28_311_552
    assert kv_cache_bytes(gemma, 4096, kv_type="q8_0") == 72 * MiB * 34 // 32 // 2


def test_ram_estimate_parts(gemma) -> None:  # type: ignore[no-untyped-def]
    est = estimate_ram(gemma, 4096, repack_types=("Q4_0", "Q4_K", "IQ4_NL"))
    assert est.weights == 246_587_904
    assert est.repacked == 13_271_040  # the Q4_K tensors: llama.cpp logs CPU_REPACK = 12.66 MiB
    assert est.kv_cache == 72 * MiB
    assert est.total == est.weights + est.repacked + est.kv_cache + est.compute + est.runtime


def test_generation_speed_by_hand(gemma) -> None:  # type: ignore[no-untyped-def]
    prof = DeviceProfile("t", "test", "x86_64", 2, 8 << 30, (), gen_bandwidth=10e9,
                         bw_saturation_threads=2, prompt_flops=100e9, layer_overhead_s=0.0,
                         repack_types=(), sources="test")
    s = predict_speed(gemma, prof, threads=2)
    # tg128: average 64 positions in the cache; SWA layers read min(64, 512) as well.
    kv = 18 * 2 * 256 * 2 * 64
    assert s.gen_tps == pytest.approx(10e9 / (246_587_904 + kv))
    flops = 2 * 268_098_176 + 4 * 18 * 4 * 256 * 256  # matmuls + attention at 256 avg positions
    assert s.prompt_tps == pytest.approx(100e9 / flops)
    one = predict_speed(gemma, prof, threads=1)
    assert one.gen_tps == pytest.approx(s.gen_tps / 2) and one.prompt_tps == pytest.approx(s.prompt_tps / 2)


def test_moe_reads_active_experts_only() -> None:
    fam = resolve_family("qwen3-30b-a3b")
    f = facts_from_family(fam, get_quant("Q4_K_M"))
    assert f.read_bytes_per_token < f.weight_bytes / 8
    dense = facts_from_family(resolve_family("qwen2.5-7b"), get_quant("Q4_K_M"))
    pi5 = get_profile("pi5-8gb")
    assert predict_speed(f, pi5).gen_tps > predict_speed(dense, pi5).gen_tps


def test_large_vocab_output_counts() -> None:
    # Gemma 3 1B ties its 262k x 1152 embedding: it is read once per token as the output matrix.
    f = facts_from_family(resolve_family("gemma3-1b"), get_quant("Q4_K_M"))
    emb = 262144 * 1152
    assert f.read_bytes_per_token > emb * 6.5 / 8  # stored at >= Q6_K by llama.cpp's quantizer


def test_profiles_interface() -> None:
    assert {"pi4-8gb", "pi4-4gb", "pi5-8gb", "n100-16gb"} <= set(PROFILES)
    for p in PROFILES.values():
        assert p.sources and p.gen_bandwidth > 0 and p.prompt_flops > 0 and p.cores == 4
    with pytest.raises(ConfigError, match="pi4-8gb"):
        get_profile("pi9-64gb")
    with pytest.raises(ConfigError, match="--calibrate"):
        get_profile("local")  # fresh SLMNODE_HOME: not calibrated


def test_pi4_has_no_repack() -> None:
    assert get_profile("pi4-8gb").repack_types == ()


GiB = 2**30


@pytest.mark.parametrize(("family", "ram_gib", "ctx", "split"), [
    ("embedded", 8, 4096, True),      # 216 MiB more KV on a Pi 4 8 GB: worth it
    ("embedded", 4, 4096, False),     # ... but not on a 4 GB board (> 5% of RAM)
    ("embedded", 24, 16384, True),
    ("qwen2.5-7b", 8, 4096, False),   # a 7B model's KV x4 would not fit the 5% budget
    ("gemma3-1b", 8, 2048, True),
    ("llama3.2-3b", 16, 8192, False),
])
def test_kv_layout_auto_splits_only_when_cheap(gemma, family: str, ram_gib: int, ctx: int,  # type: ignore[no-untyped-def]
                                               split: bool) -> None:
    facts = gemma if family == "embedded" else facts_from_family(resolve_family(family), get_quant("Q4_K_M"))
    assert kv_split_fits(facts, ctx, 4, total_ram_bytes=ram_gib * GiB) is split
    assert kv_split_fits(facts, ctx, 1, total_ram_bytes=ram_gib * GiB) is False  # one sequence: nothing to split
    assert kv_split_fits(facts, ctx, 4, total_ram_bytes=None) is False  # unknown RAM: the frugal layout
