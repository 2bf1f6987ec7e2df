"""Compare quantizations of one model: size, bits per weight, RAM, perplexity, KL divergence, speed.

The reference stays loaded; each candidate is loaded in turn and evaluated in lockstep with it,
chunk by chunk, so memory is the reference + one candidate + ``n_batch`` MiB of logits each,
whatever the number of candidates (the price: the reference is re-evaluated per candidate).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from slmnode.catalog.gguf_meta import read_metadata
from slmnode.catalog.model_info import model_info
from slmnode.engine.scoring import LogitScorer, measure_speed
from slmnode.errors import ModelFormatError
from slmnode.lab.evaluate import compare_to_reference, perplexity, plan_chunks
from slmnode.lab.verdict import add_verdicts
from slmnode.planner.memory import estimate_ram
from slmnode.planner.model_facts import facts_from_gguf


class CompareProgress(Protocol):
    def start(self, total: int) -> None: ...
    def step(self, description: str) -> None: ...


@dataclass
class QuantRow:
    label: str
    path: str
    quant_type: str | None
    is_reference: bool
    size_bytes: int
    bits_per_weight: float
    ram_bytes: int  # planner estimate at the comparison's context: weights + KV + compute + runtime
    perplexity: float
    perplexity_error: float
    kld_mean: float = 0.0
    kld_median: float = 0.0
    kld_p99: float = 0.0
    kld_max: float = 0.0
    top1_agreement: float = 1.0
    prompt_tps: float | None = None
    generation_tps: float | None = None
    verdict: str = ""


@dataclass
class CompareReport:
    reference: str
    corpus: str
    ctx: int
    n_chunks: int
    scored_tokens: int
    threads: int
    speed_test: dict[str, int] = field(default_factory=dict)
    rows: list[QuantRow] = field(default_factory=list)
    advice: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for row in d["rows"]:  # JSON has no NaN
            for k, v in row.items():
                if isinstance(v, float) and math.isnan(v):
                    row[k] = None
        return d


def file_facts(path: str | Path, ctx: int) -> tuple[int, float, int, str | None]:
    """(size bytes, bits per weight over all tensors, RAM estimate at ``ctx``, quant type)."""
    p = Path(path)
    meta = read_metadata(p)
    n_el = sum(t.n_elements for t in meta.tensors)
    n_b = sum(t.n_bytes for t in meta.tensors)
    if n_el == 0:
        raise ModelFormatError(f"{p.name} holds no tensors")
    ram = estimate_ram(facts_from_gguf(p), ctx).total
    return p.stat().st_size, 8.0 * n_b / n_el, ram, model_info(p, meta).quant_type


def _label(path: Path, taken: set[str]) -> str:
    label = path.stem if not path.stem.startswith("sha256-") else path.stem[:15]
    while label in taken:
        label += "'"
    taken.add(label)
    return label


def compare_quants(
    reference: str | Path, models: list[str | Path], *, text: str, corpus_label: str, ctx: int = 512,
    max_chunks: int | None = None, threads: int | None = None, n_batch: int = 64, speed: bool = True,
    speed_prompt: int = 256, speed_gen: int = 32, speed_reps: int = 3, progress: CompareProgress | None = None,
) -> CompareReport:
    """Score ``models`` against ``reference`` on ``text``; one row per file, reference first."""
    ref_path = Path(reference)
    paths = [Path(m) for m in models if not (Path(m).exists() and ref_path.exists() and os.path.samefile(m, ref_path))]
    threads = threads or os.cpu_count() or 1
    report = CompareReport(str(ref_path), corpus_label, ctx, 0, 0, threads)
    with LogitScorer(ref_path, n_ctx=ctx, n_batch=n_batch, threads=threads) as ref:
        tokens = ref.tokenize(text)
        plan = plan_chunks(tokens, ctx, ref.bos, max_chunks)
        report.n_chunks, report.scored_tokens = plan.n_chunks, plan.scored_tokens
        if progress:
            progress.start(plan.n_chunks * max(1, len(paths)) + (len(paths) + 1 if speed else 0))
        taken: set[str] = set()
        size, bpw, ram, qt = file_facts(ref_path, ctx)
        ref_row = QuantRow(_label(ref_path, taken), str(ref_path), qt, True, size, bpw, ram, math.nan, math.nan)
        report.rows.append(ref_row)
        for path in paths:
            label = _label(path, taken)
            size, bpw, ram, qt = file_facts(path, ctx)
            with LogitScorer(path, n_ctx=ctx, n_batch=n_batch, threads=threads) as model:
                step: Callable[[int], None] | None = (
                    (lambda _n, lb=label: progress.step(f"scoring {lb}")) if progress else None)
                ref_nll, nll, kl = compare_to_reference(ref, model, plan, step)
            if math.isnan(ref_row.perplexity):
                ref_row.perplexity, ref_row.perplexity_error = ref_nll.perplexity, ref_nll.perplexity_error
            report.rows.append(QuantRow(label, str(path), qt, False, size, bpw, ram, nll.perplexity,
                                        nll.perplexity_error, **kl.summary()))  # type: ignore[arg-type]
        if not paths:
            step = (lambda _n: progress.step(f"scoring {ref_row.label}")) if progress else None
            stats = perplexity(ref, plan, step)
            ref_row.perplexity, ref_row.perplexity_error = stats.perplexity, stats.perplexity_error
    if speed:
        report.speed_test = {"n_prompt": speed_prompt, "n_gen": speed_gen, "reps": speed_reps}
        for row in report.rows:
            if progress:
                progress.step(f"speed {row.label}")
            s = measure_speed(row.path, tokens, n_prompt=speed_prompt, n_gen=speed_gen, reps=speed_reps,
                              threads=threads)
            row.prompt_tps, row.generation_tps = s.prompt_tps, s.generation_tps
    report.advice = add_verdicts(report.rows)
    return report
