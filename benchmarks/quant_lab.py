"""Quant lab benchmark on the embedded model: unpack to F16, quantize, compare, cross-check llama-perplexity.

    .venv/bin/python benchmarks/quant_lab.py --chunks 8 --ctx 512 --max-chars 45000

Steps: (1) F16 reference unpacked from the embedded Q4_K_M (gguf package); (2) Q8_0, Q4_K_M,
Q4_K_S, Q4_0 from that F16 through llama.cpp's quantizer; (3) `compare_quants` (perplexity, KLD,
top-1, speed); (4) llama.cpp's own llama-perplexity on the same corpus file, context and chunks,
if the binary is in ~/.cache/slmnode/llama-tools/bin (measurement only). Writes JSON (and a PNG) to
~/.cache/slmnode/quant-lab/quant_lab.json (--out) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from slmnode.catalog.embedded import GEMMA3
from slmnode.catalog.store import ModelStore
from slmnode.engine.quantize import quantize_gguf
from slmnode.lab.chart import plot_compare
from slmnode.lab.compare import compare_quants
from slmnode.lab.corpus import load_corpus
from slmnode.lab.dequantize import dequantize_gguf

QUANTS = ["Q8_0", "Q4_K_M", "Q4_K_S", "Q4_0"]
TOOL = Path.home() / ".cache/slmnode/llama-tools/bin/llama-perplexity"


def llama_perplexity(model: Path, corpus: Path, ctx: int, chunks: int, threads: int) -> float | None:
    if not TOOL.exists():
        return None
    r = subprocess.run([str(TOOL), "-m", str(model), "-f", str(corpus), "-c", str(ctx), "--chunks", str(chunks),
                        "-t", str(threads)], capture_output=True, text=True, timeout=3600)
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", r.stdout + r.stderr)
    return float(m.group(1)) if m else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache/slmnode/quant-lab")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--max-chars", type=int, default=45000)
    ap.add_argument("--speed-reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=Path.home() / ".cache/slmnode/quant-lab/quant_lab.json")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    store = ModelStore()
    embedded = store.path_of(store.ensure_embedded(GEMMA3.name))
    timings: dict[str, float] = {}

    ref = args.work / "gemma3-270m-F16.gguf"
    if not ref.exists():
        t = time.perf_counter()
        dequantize_gguf(embedded, ref)
        timings["dequantize_s"] = time.perf_counter() - t
    paths = []
    for q in QUANTS:
        p = args.work / f"gemma3-270m-{q}.gguf"
        if not p.exists():
            t = time.perf_counter()
            quantize_gguf(ref, p, q, threads=args.threads)
            timings[f"quantize_{q}_s"] = time.perf_counter() - t
        paths.append(p)

    label, text = load_corpus(max_chars=args.max_chars)
    corpus_file = args.work / f"corpus-{args.max_chars}.txt"
    corpus_file.write_text(text, encoding="utf-8")
    t = time.perf_counter()
    report = compare_quants(ref, list(paths), text=text, corpus_label=f"{label}[:{args.max_chars}]", ctx=args.ctx,
                            max_chunks=args.chunks, threads=args.threads, speed_reps=args.speed_reps)
    timings["compare_s"] = time.perf_counter() - t
    plot_compare(report, args.out.with_suffix(".png"))
    print(json.dumps({"advice": report.advice}), file=sys.stderr)

    rows = report.to_dict()["rows"]
    for row in rows:
        t = time.perf_counter()
        row["llama_perplexity"] = llama_perplexity(Path(row["path"]), corpus_file, args.ctx, args.chunks, args.threads)
        timings[f"llama_perplexity_{row['label']}_s"] = time.perf_counter() - t
        if row["llama_perplexity"]:
            row["ppl_diff_pct"] = 100 * (row["perplexity"] / row["llama_perplexity"] - 1)
    result = {"machine": f"{platform.machine()} {os.cpu_count()} cpus, load avg {os.getloadavg()[0]:.1f}",
              "ctx": args.ctx, "chunks": report.n_chunks, "scored_tokens": report.scored_tokens,
              "threads": args.threads, "corpus": report.corpus, "timings": timings, "advice": report.advice,
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")

    print("| model | size MB | bpw | RAM MiB | PPL (slmnode) | PPL (llama-perplexity) | diff | KLD mean | KLD p99 | top-1 | pp tok/s | tg tok/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lp = f"{r['llama_perplexity']:.3f}" if r.get("llama_perplexity") else "-"
        diff = f"{r['ppl_diff_pct']:+.2f}%" if r.get("ppl_diff_pct") is not None else "-"
        print(f"| {r['quant_type']} | {r['size_bytes'] / 1e6:.1f} | {r['bits_per_weight']:.2f} | "
              f"{r['ram_bytes'] / 2**20:.0f} | {r['perplexity']:.3f} | {lp} | {diff} | {r['kld_mean']:.4f} | "
              f"{r['kld_p99']:.3f} | {r['top1_agreement']:.1%} | {r['prompt_tps']:.0f} | {r['generation_tps']:.1f} |")
    for r in rows:
        print(f"- {r['quant_type']}: {r['verdict']}")
    print(f"\nadvice: {report.advice}")


if __name__ == "__main__":
    main()
