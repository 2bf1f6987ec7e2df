"""Where a decode step's time goes, in-process (no HTTP): the figures behind issue 6's speed work.

Measured on the embedded model with the engine's own ``LoadedModel`` (n_seq 4, unified KV):
- ``llama_decode`` time for 1 and 4 generating rows, with logits on every row, one row, or none:
  the 262,144-token output layer's share of a step, and why 4 streams cost ~3x one;
- the Python time between two decodes of ``BatchEngine`` (sampling, detokenizing, events);
- the grammar resample after a rejected token: highest-logit candidates first
  (``SeqSampler._resample``) against the grammar over all 262,144 candidates (``_full``).

Usage: .venv/bin/python benchmarks/engine_profile.py [--threads 2] [--steps 20]
Prints a markdown table and writes benchmarks/results/engine_profile.json. Medians; the box may be
shared, so compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import time
from pathlib import Path
from typing import Any

import llama_cpp
from _common import embedded_model

from slmnode.engine import batch as batch_mod
from slmnode.engine.batch import BatchEngine
from slmnode.engine.grammar import grammar_text_for
from slmnode.engine.model import LoadedModel
from slmnode.engine.protocol import GenerationParams
from slmnode.engine.sampling import SeqSampler

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string", "maxLength": 40},
                                                     "minItems": 12, "maxItems": 12}}, "required": ["items"]}
PROMPT = "<start_of_turn>user\nList twelve fruits as JSON.<end_of_turn>\n<start_of_turn>model\n"


def decode_rows(lm: LoadedModel, steps: int) -> dict[str, float]:
    batch = llama_cpp.llama_batch_init(64, 0, 1)
    pos = [0] * lm.n_seq
    out: dict[str, float] = {}
    try:
        for rows, with_logits in [(1, 1), (1, 0), (4, 4), (4, 1), (4, 0)]:
            times = []
            for _ in range(steps):
                for i in range(rows):
                    batch.token[i], batch.pos[i], batch.n_seq_id[i] = 1000 + i, pos[i], 1
                    batch.seq_id[i][0] = i
                    batch.logits[i] = i < with_logits
                    pos[i] += 1
                batch.n_tokens = rows
                t0 = time.perf_counter()
                llama_cpp.llama_decode(lm.ctx, batch)
                times.append(time.perf_counter() - t0)
            out[f"decode {rows} row(s), logits on {with_logits}"] = statistics.median(times) * 1000
    finally:
        llama_cpp.llama_batch_free(batch)
        for s in range(lm.n_seq):
            llama_cpp.llama_memory_seq_rm(lm.memory, s, -1, -1)
    return out


def python_gap(lm: LoadedModel, n_streams: int, params: dict[str, Any]) -> tuple[float, float]:
    """Median decode ms and median Python ms between decodes, for ``n_streams`` greedy requests."""
    marks: list[tuple[float, float]] = []
    real = llama_cpp.llama_decode

    def timed(ctx: Any, batch: Any) -> int:
        t0 = time.perf_counter()
        rc = real(ctx, batch)
        marks.append((t0, time.perf_counter()))
        return int(rc)

    batch_mod.llama_cpp.llama_decode = timed  # type: ignore[attr-defined]
    try:
        engine = BatchEngine(lm, lambda msgs: None, 2)
        jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        for i, p in enumerate(["1, 2, 3, 4,", "def fibonacci(n):", "Monday, Tuesday,", "<html>"][:n_streams]):
            jobs.put({"op": "generate", "id": str(i), "prompt": p, "params": params})
        jobs.put(None)
        engine.run(jobs)
        engine.close()
    finally:
        batch_mod.llama_cpp.llama_decode = real  # type: ignore[attr-defined]
    decode = [b - a for a, b in marks[2:]]
    gaps = [marks[i + 1][0] - marks[i][1] for i in range(1, len(marks) - 1)]
    for s in range(lm.n_seq):
        llama_cpp.llama_memory_seq_rm(lm.memory, s, -1, -1)
    return statistics.median(decode) * 1000, statistics.median(gaps) * 1000


def grammar_resample(lm: LoadedModel, steps: int) -> tuple[float, float, int]:
    """Median ms of the fast and the full grammar resample over the steps of a real JSON generation."""
    gbnf = grammar_text_for(SCHEMA, False)
    params = GenerationParams(temperature=0)
    fast, full = SeqSampler(lm, params, gbnf), SeqSampler(lm, params, gbnf)
    batch = llama_cpp.llama_batch_init(256, 0, 1)
    t_fast, t_full = [], []
    try:
        tokens = lm.tokenize(PROMPT)
        for i, t in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, i, 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        llama_cpp.llama_decode(lm.ctx, batch)
        pos, idx = len(tokens), len(tokens) - 1
        for _ in range(steps):
            logits = lm.logits(idx)
            t0 = time.perf_counter()
            token = fast._resample(logits)
            t1 = time.perf_counter()
            full._full(logits, with_grammar=True)
            t_fast.append(t1 - t0)
            t_full.append(time.perf_counter() - t1)
            if lm.is_eog(token):
                break
            for s in (fast, full):
                llama_cpp.llama_sampler_accept(s.chain, token)
                llama_cpp.llama_sampler_accept(s.grammar, token)
            batch.token[0], batch.pos[0], batch.n_seq_id[0], batch.logits[0] = token, pos, 1, True
            batch.seq_id[0][0] = 0
            batch.n_tokens = 1
            llama_cpp.llama_decode(lm.ctx, batch)
            pos, idx = pos + 1, 0
        return statistics.median(t_fast) * 1000, statistics.median(t_full) * 1000, fast.full_resamples
    finally:
        fast.close()
        full.close()
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_memory_seq_rm(lm.memory, 0, -1, -1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    lm = embedded_model(args.threads)
    rows = decode_rows(lm, args.steps)
    greedy = GenerationParams(max_tokens=64, temperature=0).model_dump()
    default = GenerationParams(max_tokens=64).model_dump()
    for n in (1, 4):
        for name, params in (("greedy", greedy), ("default chain", default)):
            d, g = python_gap(lm, n, params)
            rows[f"{n} stream(s) {name}: decode"] = d
            rows[f"{n} stream(s) {name}: Python between decodes"] = g
    fast_ms, full_ms, n_full = grammar_resample(lm, 40)
    rows["grammar resample, top candidates first"] = fast_ms
    rows["grammar resample, all 262,144 candidates"] = full_ms
    print(f"load average {os.getloadavg()[0]:.2f}; {args.threads} threads; medians, ms\n")
    print("| what | ms |\n|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {v:.2f} |")
    print(f"\nfast resamples that fell back to the full vocabulary: {n_full}")
    out = ROOT / "benchmarks/results/engine_profile.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, "load": os.getloadavg()[0], "ms": rows,
                               "full_fallbacks": n_full}, indent=2))


if __name__ == "__main__":
    main()
