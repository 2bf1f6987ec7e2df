"""Quant-lab math and logic without a model: metrics, chunk plan, verdicts, dequantize round trip."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import pytest

from slmnode.errors import ConfigError
from slmnode.lab.dequantize import dequantize_gguf
from slmnode.lab.evaluate import plan_chunks
from slmnode.lab.metrics import KlStats, NllStats, kl_divergence, log_softmax, token_nll, top1_agreement
from slmnode.lab.produce import base_name
from slmnode.lab.verdict import add_verdicts, quality_band


def test_log_softmax_rows_are_distributions() -> None:
    logits = np.random.default_rng(0).normal(size=(3, 1000)).astype(np.float32) * 10
    lp = log_softmax(logits)
    np.testing.assert_allclose(np.exp(lp.astype(np.float64)).sum(axis=1), 1.0, rtol=1e-5)


def test_token_nll_matches_definition() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    nll = token_nll(logits, np.array([2, 1]))
    p = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(nll, [-math.log(p[2]), math.log(3)], rtol=1e-6)


def test_kl_divergence_known_values() -> None:
    p, q = np.array([0.5, 0.25, 0.25]), np.array([0.25, 0.5, 0.25])
    expected = float((p * np.log(p / q)).sum())
    kl = kl_divergence(np.log(p)[None].astype(np.float32), np.log(q)[None].astype(np.float32))
    assert kl[0] == pytest.approx(expected, rel=1e-5)
    same = np.random.default_rng(1).normal(size=(4, 500)).astype(np.float32)
    assert kl_divergence(same, same.copy()).tolist() == [0.0] * 4
    assert top1_agreement(same, same).all()
    assert not top1_agreement(np.log(p)[None], np.log(q)[None]).any()


def test_stats_summaries() -> None:
    s = NllStats()
    s.add(np.array([1.0, 2.0, 3.0]))
    assert s.perplexity == pytest.approx(math.exp(2.0))
    assert s.perplexity_error == pytest.approx(math.exp(2.0) * 1.0 / math.sqrt(3))
    k = KlStats()
    k.add(np.array([0.0, 0.1, 0.2, 0.3]), np.array([True, True, False, True]))
    summary = k.summary()
    assert summary["kld_mean"] == pytest.approx(0.15)
    assert summary["top1_agreement"] == 0.75
    assert summary["kld_max"] == pytest.approx(0.3)


def test_plan_chunks_like_llama_perplexity() -> None:
    tokens = [2] + list(range(100, 100 + 1100))  # BOS + text
    plan = plan_chunks(tokens, 256, bos=2)
    assert plan.n_chunks == 1101 // 256 == 4
    assert plan.chunk(1)[0] == 2 and plan.chunk(1)[1:] == tokens[257:512]
    assert plan.first == 128 and plan.scored_tokens == 4 * 127
    assert plan_chunks(tokens, 256, bos=2, max_chunks=2).n_chunks == 2
    with pytest.raises(ConfigError, match="fewer than one chunk"):
        plan_chunks(tokens[:100], 256, bos=2)


@dataclass
class Row:
    label: str
    is_reference: bool
    size_bytes: int
    kld_mean: float
    perplexity: float
    top1_agreement: float = 1.0
    generation_tps: float | None = None
    verdict: str = ""


@pytest.mark.parametrize(("kld", "band"), [(0.003, "near-lossless"), (0.039, "small loss"),
                                           (0.1, "clear loss"), (0.42, "heavy loss")])
def test_quality_bands(kld: float, band: str) -> None:
    assert quality_band(kld) == band


def test_verdicts_pick_smallest_good_and_flag_dominated() -> None:
    # figures shaped like the measurements (F32 ref; Q8_0, Q4_K_M, Q4_K_S, Q4_0)
    rows = [Row("F16", True, 543, 0.0, 9.85, generation_tps=30.0),
            Row("Q8_0", False, 292, 0.003, 9.86, 0.98, 40.0),
            Row("Q4_K_M", False, 253, 0.006, 9.88, 0.97, 42.0),
            Row("Q4_K_S", False, 250, 0.039, 10.27, 0.9, 42.0),
            Row("Q4_0", False, 241, 0.42, 15.08, 0.6, 45.0),
            Row("Q4_bad", False, 260, 0.5, 16.0, 0.5, 41.0)]
    advice = add_verdicts(rows)
    assert advice.startswith("pick Q4_K_S")
    assert "Q4_0 generates fastest" in advice
    assert rows[0].verdict.startswith("reference")
    assert rows[2].verdict.startswith("near-lossless") and "ppl +0.3%" in rows[2].verdict
    assert "skip: Q4_K_M" in rows[5].verdict  # smaller, better and as fast
    assert "skip" not in rows[4].verdict


def test_base_name_strips_quant_suffix(tmp_path: Path) -> None:
    assert base_name(Path("gemma3-270m-Q4_K_M.gguf")) == "gemma3-270m"
    assert base_name(Path("model.f16.gguf")) == "model"
    assert base_name(Path("plain.gguf")) == "plain"


def test_dequantize_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    weight = rng.normal(size=(8, 64)).astype(np.float32)
    norm = rng.normal(size=(64,)).astype(np.float32)
    src = tmp_path / "tiny-Q8_0.gguf"
    w = gguf.GGUFWriter(src, "llama")
    w.add_file_type(7)
    w.add_block_count(1)
    q = gguf.quants.quantize(weight, gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.ffn_up.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.attn_norm.weight", norm)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    out = dequantize_gguf(src, tmp_path / "tiny-F16.gguf")
    r = gguf.GGUFReader(out)
    assert r.get_field("general.file_type").contents() == 1
    assert r.get_field("general.architecture").contents() == "llama"
    by_name = {t.name: t for t in r.tensors}
    up, nrm = by_name["blk.0.ffn_up.weight"], by_name["blk.0.attn_norm.weight"]
    assert up.tensor_type == gguf.GGMLQuantizationType.F16
    assert nrm.tensor_type == gguf.GGMLQuantizationType.F32
    expected = gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0).astype(np.float16)
    np.testing.assert_array_equal(np.asarray(up.data).reshape(8, 64), expected)
    np.testing.assert_array_equal(np.asarray(nrm.data), norm)
    np.testing.assert_allclose(np.asarray(up.data, dtype=np.float32).reshape(8, 64), weight, atol=0.05)
    assert not list(tmp_path.glob(".*part*"))
