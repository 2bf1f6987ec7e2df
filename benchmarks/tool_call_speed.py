"""Issue 16 figure: tool-call generation speed with the grammar, against free text, through HTTP.

One node (``slmnode serve``, the embedded SmolLM2-135M-Instruct by default), interleaved round by round:
- ``free``: a chat answer, no tools;
- ``lazy``: the same request with ``tools`` and ``tool_choice: auto`` — the lazy grammar is loaded but the
  model answers in text, so this is what carrying tools costs free text;
- ``call``: ``tool_choice: required`` — the call is generated under the grammar in the model's own syntax
  (a tool whose one argument is a long free string, so the call is as long as the free answers).
Each figure is the engine's generation tok/s from the response ``timings`` (prompt excluded); ratios are
medians of per-round ratios (this VM drifts ±10-20% within minutes).

Usage: .venv/bin/python benchmarks/tool_call_speed.py [--rounds 8] [--threads 2] [--model PATH] [--max-tokens 96]
Prints a markdown section and writes benchmarks/results/tool_call_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from _common import free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "Write a short story about a lighthouse keeper and a storm."
TOOLS = [{"type": "function", "function": {
    "name": "save_story", "description": "Save a short story to the archive",
    "parameters": {"type": "object", "properties": {"story": {"type": "string"}}, "required": ["story"]}}}]


def default_model() -> str:
    from slmnode.catalog.embedded import SMOLLM2
    from slmnode.catalog.store import ModelStore

    store = ModelStore()
    return str(store.path_of(store.ensure_embedded(SMOLLM2.name)))


def chat(http: httpx.Client, max_tokens: int, **extra: Any) -> tuple[float, int, bool]:
    body = {"messages": [{"role": "user", "content": QUESTION}], "temperature": 0, "max_tokens": max_tokens, **extra}
    r = http.post("/v1/chat/completions", json=body)
    r.raise_for_status()
    data = r.json()
    t = data["timings"]
    return float(t["predicted_per_second"]), int(t["predicted_n"]), bool(data["choices"][0]["message"].get("tool_calls"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--model", default=None, help="a GGUF path (default: the embedded SmolLM2-135M-Instruct)")
    args = ap.parse_args()
    model = args.model or default_model()
    port = free_port()
    home = tempfile.mkdtemp(prefix="slmnode-bench-")
    proc = subprocess.Popen([sys.executable, "-m", "slmnode", "serve", "--model", model, "--port", str(port),
                             "--threads", str(args.threads), "--ctx", "2048"],
                            env={**os.environ, "SLMNODE_HOME": home}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=900)
        chat(http, 8)  # warm-up
        runs: dict[str, list[float]] = {"free": [], "lazy": [], "call": []}
        tokens: dict[str, list[int]] = {"free": [], "lazy": [], "call": []}
        calls = 0
        for r in range(args.rounds):
            order = ["free", "lazy", "call"][r % 3:] + ["free", "lazy", "call"][:r % 3]
            for kind in order:
                extra: dict[str, Any] = {}
                if kind != "free":
                    extra = {"tools": TOOLS, "tool_choice": "auto" if kind == "lazy" else "required"}
                tps, n, called = chat(http, args.max_tokens, **extra)
                runs[kind].append(tps)
                tokens[kind].append(n)
                calls += called and kind == "call"
        ratio = {k: statistics.median(a / b for a, b in zip(runs[k], runs["free"], strict=True)) for k in ("lazy", "call")}
    finally:
        proc.terminate()
        proc.wait(30)
    med = {k: statistics.median(v) for k, v in runs.items()}
    label = Path(args.model).name if args.model else "smollm2:135m-instruct-q4_1 (embedded)"
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "model": label,
              "threads": args.threads, "rounds": args.rounds, "max_tokens": args.max_tokens,
              "median_tps": med, "median_tokens": {k: statistics.median(v) for k, v in tokens.items()},
              "ratio_vs_free": ratio, "forced_calls_made": calls}
    out = ROOT / "benchmarks" / "results" / "tool_call_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"### Tool-call generation speed ({result['machine']}, {result['model']}, {args.threads} threads, "
          f"{args.rounds} rounds)\n")
    print("| request | generation tok/s (median) | tokens (median) | ratio to free text |")
    print("|---|---|---|---|")
    for k, label in (("free", "free text"), ("lazy", "tools auto (lazy grammar, text answer)"),
                     ("call", "tool_choice required (call under the grammar)")):
        r = "1.00" if k == "free" else f"{ratio[k]:.3f}"
        print(f"| {label} | {med[k]:.1f} | {result['median_tokens'][k]:.0f} | {r} |")
    print(f"\nforced calls made: {calls}/{args.rounds}")


if __name__ == "__main__":
    main()
