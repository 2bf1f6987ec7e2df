"""Issue 6's single-stream targets with many samples: slmnode vs llama-server, request by request.

The same greedy /v1/completions request (128 tokens) goes alternately to ``slmnode serve`` (default
settings, ``--parallel 4``) and ``llama-server -np 4 -kvu``; ``llama-bench`` tg128 runs before and after.
tok/s = completion tokens / wall time of the request (prompt, HTTP and all). Reported: medians, the
ratio of medians and the median of per-pair ratios (each pair ran back to back, so slow drifts of
the machine cancel).

Usage: .venv/bin/python benchmarks/single_stream.py [--pairs 30] [--threads 2] [--ctx 4096]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _common import free_port, wait_http  # noqa: E402  (run as a script from benchmarks/)
from batching import TOOLS, llama_bench_tg128, model_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["1, 2, 3, 4,"]  # as batching.py: a greedy continuation that runs the full 128 tokens


def tps(client: httpx.Client, model: str, prompt: str) -> float:
    t0 = time.perf_counter()
    r = client.post("/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": 128, "temperature": 0})
    r.raise_for_status()
    return int(r.json()["usage"]["completion_tokens"]) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096)
    args = ap.parse_args()
    model = model_path()
    procs: list[subprocess.Popen[bytes]] = []
    samples: dict[str, list[float]] = {"slmnode": [], "llama-server": []}
    bench_before = llama_bench_tg128(model, args.threads)
    with tempfile.TemporaryDirectory() as home:
        try:
            port, lport = free_port(), free_port()
            env = {**os.environ, "SLMNODE_HOME": os.environ.get("SLMNODE_HOME", str(Path(model).parents[2]))}
            procs.append(subprocess.Popen([sys.executable, "-m", "slmnode", "serve", "--port", str(port), "--threads",
                                           str(args.threads), "--ctx", str(args.ctx), "--parallel", "4"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=home))
            wait_http(f"http://127.0.0.1:{port}/health", procs[-1])
            procs.append(subprocess.Popen(
                [str(TOOLS / "llama-server"), "-m", model, "--host", "127.0.0.1", "--port", str(lport),
                 "-t", str(args.threads), "-c", str(args.ctx), "-b", "512", "-ub", "512", "-fa", "off",
                 "-np", "4", "-kvu", "--no-webui"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_http(f"http://127.0.0.1:{lport}/health", procs[-1])
            ours = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
            theirs = httpx.Client(base_url=f"http://127.0.0.1:{lport}", timeout=300)
            name = ours.get("/v1/models").json()["data"][0]["id"]
            for _ in range(2):  # warm-up
                tps(ours, name, PROMPTS[0])
                tps(theirs, "default", PROMPTS[0])
            for i in range(args.pairs):
                prompt = PROMPTS[i % len(PROMPTS)]
                order = [("slmnode", ours, name), ("llama-server", theirs, "default")]
                for key, client, m in order if i % 2 == 0 else reversed(order):
                    samples[key].append(tps(client, m, prompt))
                print(f"pair {i + 1}/{args.pairs}", file=sys.stderr)
        finally:
            for p in procs:
                p.terminate()
                p.wait(30)
    bench_after = llama_bench_tg128(model, args.threads)
    ours_med, theirs_med = statistics.median(samples["slmnode"]), statistics.median(samples["llama-server"])
    pair_ratio = statistics.median(a / b for a, b in zip(samples["slmnode"], samples["llama-server"], strict=True))
    tg = statistics.mean(x for x in (bench_before, bench_after) if x is not None) if bench_before else None
    result = {"pairs": args.pairs, "threads": args.threads, "samples": samples, "slmnode_median": ours_med,
              "llama_server_median": theirs_med, "median_pair_ratio": pair_ratio,
              "llama_bench_tg128": [bench_before, bench_after], "load_average": os.getloadavg()[0]}
    (ROOT / "benchmarks/results/single_stream.json").write_text(json.dumps(result, indent=2))
    print(f"| pairs | slmnode tok/s | llama-server tok/s | ratio of medians | median of pair ratios | "
          f"llama-bench tg128 before/after | slmnode / tg128 |\n|---|---|---|---|---|---|---|\n"
          f"| {args.pairs} | {ours_med:.1f} | {theirs_med:.1f} | {ours_med / theirs_med:.3f}× | {pair_ratio:.3f}× | "
          f"{bench_before or 0:.1f} / {bench_after or 0:.1f} | {ours_med / tg:.3f}× |" if tg else "")


if __name__ == "__main__":
    main()
