"""Privacy guard: recall and false positives per kind over the labelled corpus, and scan speed.

Quality: for each kind, recall = labelled snippets in which the guard reports that kind; false
positives = snippets *not* labelled with the kind in which it is reported anyway (rate over those
snippets), and the share of non-PII snippets with any finding (what would wrongly stay local).
Speed: ``scan_text`` over 10 KB blocks cut from (a) the whole corpus (dense PII: a worst case
for the validators), (b) only the non-PII snippets (code, logs, prose), (c) random digits and
spaces (the slowest input a fuzz of character soups and repeated units found: every position
starts a number candidate), and ``scan_messages`` on a 10 KB chat request; median of --repeats
in CPU ms per 10 KB (and µs per KB), plus wall-clock median and best.

Usage: .venv/bin/python benchmarks/privacy_guard.py [--corpus F] [--repeats 200] [--json]
Prints markdown for docs/privacy-guard.md (or one JSON object with --json).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slmnode.router.privacy import Kind, scan_messages, scan_text  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "privacy" / "corpus.jsonl"
BLOCK = 10 * 1024


def quality(rows: list[dict[str, Any]]) -> dict[str, Any]:
    found = {row["id"]: {f.kind for f in scan_text(row["text"])} for row in rows}
    per_kind: dict[str, dict[str, Any]] = {}
    for kind in get_args(Kind):
        labelled = [r for r in rows if kind in r["kinds"]]
        others = [r for r in rows if kind not in r["kinds"]]
        hits = sum(kind in found[r["id"]] for r in labelled)
        false_ids = [r["id"] for r in others if kind in found[r["id"]]]
        per_kind[kind] = {"positives": len(labelled), "detected": hits,
                          "recall": hits / len(labelled) if labelled else None,
                          "false_positives": len(false_ids), "fp_rate": len(false_ids) / len(others),
                          "false_positive_ids": false_ids}
    pii = [r for r in rows if r["pii"]]
    clean = [r for r in rows if not r["pii"]]
    missed = [r["id"] for r in pii if not found[r["id"]]]
    flagged = [r["id"] for r in clean if found[r["id"]]]
    return {"snippets": len(rows), "pii_snippets": len(pii), "clean_snippets": len(clean),
            "pii_recall": 1 - len(missed) / len(pii), "missed_ids": missed,
            "clean_fp_rate": len(flagged) / len(clean), "flagged_clean_ids": flagged,
            "per_kind": per_kind}


def _block(texts: list[str]) -> str:
    text = "\n".join(texts)
    while len(text.encode()) < BLOCK:
        text += "\n" + text
    return text.encode()[:BLOCK].decode("utf-8", "ignore")


def _time(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """CPU time of this process (robust when other jobs share the cores) and wall time."""
    fn()  # warm the regex caches
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    median = statistics.median(cpu)
    return {"median_cpu_ms_per_10kb": median * 1e3, "median_cpu_us_per_kb": median * 1e6 / 10,
            "median_wall_ms_per_10kb": statistics.median(wall) * 1e3, "best_wall_ms_per_10kb": min(wall) * 1e3}


def speed(rows: list[dict[str, Any]], repeats: int) -> dict[str, dict[str, float]]:
    dense = _block([r["text"] for r in rows])
    clean = _block([r["text"] for r in rows if not r["pii"]])
    chunks = [clean[i:i + 1024] for i in range(0, len(clean), 1024)]
    request = [{"role": "system", "content": chunks[0]}] + [
        {"role": "user" if i % 2 else "assistant", "content": c} for i, c in enumerate(chunks[1:])]
    soup = "".join(random.Random(5).choice("0123456789 ") for _ in range(BLOCK))
    return {"scan_text, corpus mix (dense PII)": _time(lambda: scan_text(dense), repeats),
            "scan_text, non-PII snippets only": _time(lambda: scan_text(clean), repeats),
            "scan_text, random digits and spaces (slowest input found)": _time(lambda: scan_text(soup), repeats),
            "scan_messages, 10 messages x 1 KB": _time(lambda: scan_messages(request), repeats)}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def markdown(result: dict[str, Any]) -> str:
    q = result["quality"]
    lines = [f"Corpus: {q['snippets']} snippets ({q['pii_snippets']} with PII, {q['clean_snippets']} without).",
             "", "| kind | positives | detected | recall | false positives | FP rate |", "|---|---:|---:|---:|---:|---:|"]
    for kind, k in q["per_kind"].items():
        lines.append(f"| {kind} | {k['positives']} | {k['detected']} | {_pct(k['recall'])} | "
                     f"{k['false_positives']} | {_pct(k['fp_rate'])} |")
    caught = (f"PII snippets caught: {_pct(q['pii_recall'])} (missed: {q['missed_ids'] or 'none'}); "
              f"non-PII snippets flagged: {_pct(q['clean_fp_rate'])} ({q['flagged_clean_ids'] or 'none'}).")
    lines += ["", caught, "",
              f"Speed on {result['machine']} (Python {result['python']}, {result['repeats']} repeats):", "",
              "| input | CPU ms / 10 KB (median) | CPU µs / KB | wall ms / 10 KB (median) | wall best |",
              "|---|---:|---:|---:|---:|"]
    for name, t in result["speed"].items():
        lines.append(f"| {name} | {t['median_cpu_ms_per_10kb']:.2f} | {t['median_cpu_us_per_kb']:.0f} | "
                     f"{t['median_wall_ms_per_10kb']:.2f} | {t['best_wall_ms_per_10kb']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.corpus.read_text("utf-8").splitlines() if line.strip()]
    result = {"machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
              "python": platform.python_version(), "repeats": args.repeats,
              "quality": quality(rows), "speed": speed(rows, args.repeats)}
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else markdown(result))


if __name__ == "__main__":
    main()
