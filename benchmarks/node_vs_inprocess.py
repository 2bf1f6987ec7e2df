"""First figures: slmnode over HTTP vs in-process llama-cpp-python, same model and settings.

Measures, interleaved round by round so both sides see the same machine state:
- node cold start (process start → /health 200) and model load time;
- prompt tok/s (~512-token passages, each new so no prefix cache) and generation tok/s (greedy,
  128 tokens) through /v1/completions, vs ``llama_cpp.Llama.create_completion`` in-process;
- grammar-constrained generation (json_schema) vs free generation, both through the node;
- RSS of the node (HTTP process + engine worker) at idle with the model loaded.

Usage: .venv/bin/python benchmarks/node_vs_inprocess.py [--rounds 5] [--threads 2] [--ctx 2048]
Prints a markdown section for docs/benchmarks.md and writes benchmarks/results/node_vs_inprocess.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string", "maxLength": 40},
                                                     "minItems": 12, "maxItems": 12}}, "required": ["items"]}


def passages(tokenize, n: int, target: int = 512) -> list[str]:
    from slmnode.corpus import default_corpus_text

    words = default_corpus_text().split()
    out, start = [], 2000
    for _ in range(n):
        lo, hi = 50, 1200
        while lo < hi:  # binary search the word count that gives ~target tokens
            mid = (lo + hi) // 2
            if len(tokenize(" ".join(words[start:start + mid]))) < target:
                lo = mid + 1
            else:
                hi = mid
        out.append(" ".join(words[start:start + lo]))
        start += lo + 17
    return out


def start_node(home: Path, threads: int, ctx: int) -> tuple[subprocess.Popen[str], str, float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "slmnode", "serve", "--port", "0", "--threads", str(threads),
                             "--ctx", str(ctx)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SLMNODE_HOME": str(home)})
    url = load = None
    for line in proc.stderr:  # type: ignore[union-attr]
        if m := re.search(r"listening on (http://\S+)", line):
            url = m.group(1)
        if m := re.search(r"model loaded in ([0-9.]+) s", line):
            load = float(m.group(1))
            break
    cold = time.perf_counter() - t0
    assert url and load is not None, "node did not start"
    return proc, url, cold, load


def node_rss(proc: subprocess.Popen[str]) -> int:
    p = psutil.Process(proc.pid)
    return p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048)
    args = ap.parse_args()

    import llama_cpp

    from slmnode.catalog.embedded import GEMMA3
    from slmnode.catalog.store import ModelStore

    home = Path(tempfile.mkdtemp(prefix="slmnode-bench-"))
    store = ModelStore(home / "models")
    model_path = str(store.path_of(store.ensure_embedded(GEMMA3.name)))

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=args.ctx, n_threads=args.threads, n_threads_batch=args.threads,
                          n_batch=512, n_ubatch=512, verbose=False)
    inproc_load = time.perf_counter() - t0
    texts = passages(lambda s: llm.tokenize(s.encode()), args.rounds * 2)

    proc, url, cold, load = start_node(home, args.threads, args.ctx)
    res: dict[str, list[float]] = {k: [] for k in ("node_pp", "node_tg", "ip_pp", "ip_tg", "free_tg", "grammar_tg")}
    try:
        with httpx.Client(base_url=url, timeout=600) as http:
            rss_idle = node_rss(proc)
            http.post("/v1/completions", json={"prompt": "warm up", "max_tokens": 4})
            llm.create_completion("warm up", max_tokens=4)
            for i in range(args.rounds):
                # node over HTTP
                r = http.post("/v1/completions", json={"prompt": texts[2 * i], "max_tokens": 128, "temperature": 0}).json()
                res["node_pp"].append(r["timings"]["prompt_per_second"])
                res["node_tg"].append(r["timings"]["predicted_per_second"])
                # in-process, same settings, a different fresh passage (no prefix reuse either side)
                toks = llm.tokenize(texts[2 * i + 1].encode())
                llm.reset()
                t_start = time.perf_counter()
                it = llm.create_completion(toks, max_tokens=128, temperature=0, stream=True)
                n, t_first = 0, None
                for _ in it:
                    n += 1
                    t_first = t_first or time.perf_counter()
                t_end = time.perf_counter()
                res["ip_pp"].append(len(toks) / (t_first - t_start))
                res["ip_tg"].append((n - 1) / (t_end - t_first))
                # grammar vs free through the node (same prompt, same length budget)
                msgs = [{"role": "user", "content": f"List twelve things from this story: {texts[2 * i][:400]}"}]
                free = http.post("/v1/chat/completions", json={"messages": msgs, "max_tokens": 128, "temperature": 0.7, "seed": i}).json()
                gram = http.post("/v1/chat/completions", json={"messages": msgs, "max_tokens": 256, "temperature": 0.7, "seed": i,
                                                               "response_format": {"type": "json_schema", "json_schema": {"name": "l", "schema": SCHEMA}}}).json()
                res["free_tg"].append(free["timings"]["predicted_per_second"])
                res["grammar_tg"].append(gram["timings"]["predicted_per_second"])
                print(f"round {i + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in res.items()), file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait()

    med = {k: statistics.median(v) for k, v in res.items()}
    out = {
        "machine": f"{platform.machine()}, {psutil.cpu_count(logical=False)} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "llama_cpp_python": llama_cpp.__version__, "threads": args.threads, "ctx": args.ctx, "rounds": args.rounds,
        "node_cold_start_s": cold, "node_model_load_s": load, "inprocess_load_s": inproc_load,
        "node_rss_idle_mib": rss_idle / 2**20, "medians": med, "raw": res,
        "ratios": {"pp_node_over_inprocess": med["node_pp"] / med["ip_pp"], "tg_node_over_inprocess": med["node_tg"] / med["ip_tg"],
                   "grammar_over_free": med["grammar_tg"] / med["free_tg"]},
    }
    (ROOT / "benchmarks/results").mkdir(exist_ok=True)
    (ROOT / "benchmarks/results/node_vs_inprocess.json").write_text(json.dumps(out, indent=2))
    r = out["ratios"]
    print(f"""
Machine: {out['machine']}; llama-cpp-python {out['llama_cpp_python']}; threads {args.threads}, ctx {args.ctx}, {args.rounds} rounds (medians).

| measure | slmnode (HTTP) | in-process llama-cpp-python | ratio |
|---|---|---|---|
| model load (s) | {load:.2f} | {inproc_load:.2f} | |
| cold start, process → ready (s) | {cold:.2f} | | |
| prompt tok/s (~512-token prompt) | {med['node_pp']:.1f} | {med['ip_pp']:.1f} | {r['pp_node_over_inprocess']:.2f} |
| generation tok/s (128, greedy) | {med['node_tg']:.1f} | {med['ip_tg']:.1f} | {r['tg_node_over_inprocess']:.2f} |
| RSS at idle, model loaded (MiB) | {out['node_rss_idle_mib']:.0f} | | |

| through slmnode | generation tok/s | ratio to free |
|---|---|---|
| free text | {med['free_tg']:.1f} | 1.00 |
| json_schema (grammar) | {med['grammar_tg']:.1f} | {r['grammar_over_free']:.2f} |
""")


if __name__ == "__main__":
    main()
