"""Quant lab on the real embedded model: quantize, self-KLD, hand-checked perplexity, compare CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slmnode.engine.scoring import LogitScorer
from slmnode.lab.corpus import load_corpus
from slmnode.lab.evaluate import compare_to_reference, perplexity, plan_chunks

pytestmark = pytest.mark.integration

CTX = 64
TINY = ("Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
        "nothing to do: once or twice she had peeped into the book her sister was reading, but it had "
        "no pictures or conversations in it, 'and what is the use of a book,' thought Alice 'without "
        "pictures or conversations?' So she was considering in her own mind (as well as she could, "
        "for the hot day made her feel very sleepy and stupid), whether the pleasure of making a "
        "daisy-chain would be worth the trouble of getting up and picking the daisies.")


def slmnode(home: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLMNODE_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "slmnode", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture(scope="module")
def q8_path(embedded_home: Path, gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quants")
    r = slmnode(embedded_home, "quant", str(gemma_path), "--to", "Q8_0", "--allow-requantize",
                "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert "quality is bounded by the source" in r.stderr
    written = json.loads(r.stdout)["outputs"]
    assert [w["quant"] for w in written] == ["Q8_0"]
    path = Path(written[0]["path"])
    assert path.parent == out and path.stat().st_size == written[0]["size_bytes"]
    assert not list(out.glob(".*part*"))
    return path


def test_q8_0_from_embedded_loads_and_answers(embedded_home: Path, q8_path: Path) -> None:
    from slmnode.catalog.model_info import model_info

    assert model_info(q8_path).quant_type == "Q8_0"
    r = slmnode(embedded_home, "run", "The capital of France is", "-m", str(q8_path), "-n", "8",
                "--ctx", "256", "--chat-format", "plain")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


def test_quantized_source_refused_without_allow_requantize(embedded_home: Path, gemma_path: Path,
                                                           tmp_path: Path) -> None:
    r = slmnode(embedded_home, "quant", str(gemma_path), "--to", "Q8_0", "-o", str(tmp_path))
    assert r.returncode == 1
    assert "already quantized" in r.stderr and "--allow-requantize" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_engine_quantize_failure_leaves_no_partial_file(gemma_path: Path, tmp_path: Path) -> None:
    from slmnode.engine.quantize import quantize_gguf
    from slmnode.errors import ModelFormatError

    with pytest.raises(ModelFormatError, match="allow-requantize"):
        quantize_gguf(gemma_path, tmp_path / "x-Q8_0.gguf", "Q8_0", allow_requantize=False)
    assert list(tmp_path.iterdir()) == []


def test_kl_divergence_of_model_against_itself_is_zero(gemma_path: Path) -> None:
    _, text = load_corpus(max_chars=4000)
    with LogitScorer(gemma_path, n_ctx=CTX, n_batch=16, threads=2) as a, \
         LogitScorer(gemma_path, n_ctx=CTX, n_batch=16, threads=2) as b:
        plan = plan_chunks(a.tokenize(text), CTX, a.bos, max_chunks=2)
        ref_nll, nll, kl = compare_to_reference(a, b, plan)
    s = kl.summary()
    assert kl.count == plan.scored_tokens == 2 * (CTX - 1 - CTX // 2)
    assert s["kld_mean"] == pytest.approx(0.0, abs=1e-6) and s["kld_max"] == pytest.approx(0.0, abs=1e-5)
    assert s["top1_agreement"] == 1.0
    assert nll.perplexity == pytest.approx(ref_nll.perplexity, rel=1e-5)


def test_perplexity_matches_hand_computation_from_logits(gemma_path: Path) -> None:
    with LogitScorer(gemma_path, n_ctx=CTX, n_batch=8, threads=2) as s:
        tokens = s.tokenize(TINY)
        plan = plan_chunks(tokens, CTX, s.bos)
        assert plan.n_chunks >= 1
        got = perplexity(s, plan).perplexity
        # by hand: the scored positions' logits (copied), softmax in float64, explicit indexing
        nll = []
        first = CTX // 2
        for c in range(plan.n_chunks):
            chunk = [s.bos] + tokens[c * CTX + 1:(c + 1) * CTX]
            pieces = [(i0, x.copy()) for i0, x in s.chunk_logits(chunk, first, CTX - 1)]
            assert pieces[0][0] == first
            full = np.concatenate([x for _, x in pieces]).astype(np.float64)
            assert full.shape == (CTX - 1 - first, s.n_vocab)
            for j, i in enumerate(range(first, CTX - 1)):
                row = full[j] - full[j].max()
                logp = row - math.log(np.exp(row).sum())
                nll.append(-logp[tokens[c * CTX + i + 1]])
    assert got == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-6)


def test_compare_cli_json_and_chart(embedded_home: Path, gemma_path: Path, q8_path: Path, tmp_path: Path) -> None:
    png = tmp_path / "q.png"
    r = slmnode(embedded_home, "quant", "compare", str(q8_path), str(gemma_path), "--ctx", str(CTX),
                "--chunks", "2", "--batch", "16", "--threads", "2", "--no-speed", "--json", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    ref, q4 = d["rows"]
    assert ref["is_reference"] and ref["quant_type"] == "Q8_0" and ref["kld_mean"] == 0.0
    assert q4["quant_type"] == "Q4_K_M" and 0 < q4["kld_mean"] < 1 and 0.5 < q4["top1_agreement"] <= 1
    assert q4["bits_per_weight"] < ref["bits_per_weight"] and q4["size_bytes"] < ref["size_bytes"]
    assert q4["ram_bytes"] > q4["size_bytes"] * 0.9
    assert d["scored_tokens"] == 2 * (CTX - 1 - CTX // 2)
    assert q4["verdict"] and d["advice"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
