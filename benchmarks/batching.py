"""Issue 6 figures: continuous batching, prompt-prefix reuse and fast grammar, through HTTP.

One run, interleaved round by round, the same requests to each server:
- slmnode (``slmnode serve --parallel 4``) over /v1;
- llama.cpp ``llama-server -np 4`` (if ~/.cache/slmnode/llama-tools/bin/llama-server exists), plus
  ``llama-bench`` tg128 as the no-HTTP ceiling.

Measured per server (medians over rounds):
- single stream: greedy /v1/completions, 128 tokens, tok/s = completion tokens / wall time;
- 4 concurrent streams: aggregate completion tokens / wall time of the four;
- TTFT with a ~1k-token system prompt, cold (new prefix) vs warm (same prefix, new question);
- grammar: json_schema chat generation tok/s (response ``timings``) vs the same request free.

Usage: .venv/bin/python benchmarks/batching.py [--rounds 3] [--threads 2] [--ctx 4096] [--layouts split,unified]
Prints a markdown section and writes benchmarks/results/batching.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from _common import free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
TOOLS = Path.home() / ".cache/slmnode/llama-tools/bin"
PROMPTS = ["1, 2, 3, 4,", "def fibonacci(n):", "Monday, Tuesday, Wednesday,", "<html>\n<head>\n"]
SCHEMA = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string", "maxLength": 40},
                                                     "minItems": 12, "maxItems": 12}}, "required": ["items"]}


def model_path() -> str:
    from slmnode.catalog.embedded import GEMMA3
    from slmnode.catalog.store import ModelStore

    store = ModelStore()
    return str(store.path_of(store.ensure_embedded(GEMMA3.name)))


class Target:
    def __init__(self, name: str, base: str, model: str) -> None:
        self.name, self.base, self.model = name, base, model
        self.http = httpx.Client(base_url=base, timeout=900)
        self.results: dict[str, list[float]] = {}

    def add(self, key: str, value: float) -> None:
        self.results.setdefault(key, []).append(value)

    def complete(self, prompt: str, max_tokens: int) -> tuple[int, float]:
        t0 = time.perf_counter()
        r = self.http.post("/v1/completions", json={"model": self.model, "prompt": prompt, "max_tokens": max_tokens,
                                                     "temperature": 0})
        r.raise_for_status()
        return int(r.json()["usage"]["completion_tokens"]), time.perf_counter() - t0

    def chat(self, messages: list[dict[str, str]], max_tokens: int, schema: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
        if schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}
        r = self.http.post("/v1/chat/completions", json=body)
        r.raise_for_status()
        return dict(r.json())

    def round(self, system: str) -> None:
        n, dt = self.complete(PROMPTS[0], 128)
        self.add("single_tps", n / dt)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda p: self.complete(p, 128), PROMPTS))
        self.add("four_aggregate_tps", sum(o[0] for o in outs) / (time.perf_counter() - t0))
        tag = f"Session {random.randrange(10**9)}. "  # a new prefix: nothing cached
        msgs = [{"role": "system", "content": tag + system}]
        t0 = time.perf_counter()
        self.chat(msgs + [{"role": "user", "content": "What is 2+2?"}], 1, None)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.chat(msgs + [{"role": "user", "content": "Name a colour."}], 1, None)
        warm = time.perf_counter() - t0
        self.add("ttft_cold_s", cold)
        self.add("ttft_warm_s", warm)
        ask = [{"role": "user", "content": "List twelve fruits as JSON."}]
        g = self.chat(ask, 128, SCHEMA)["timings"]
        f = self.chat(ask, 128, None)["timings"]
        self.add("grammar_tps", g["predicted_per_second"])
        self.add("free_tps", f["predicted_per_second"])

    def med(self, key: str) -> float:
        return statistics.median(self.results[key])


def llama_bench_tg128(model: str, threads: int, reps: int = 3) -> float | None:
    exe = TOOLS / "llama-bench"
    if not exe.exists():
        return None
    out = subprocess.run([str(exe), "-m", model, "-t", str(threads), "-p", "0", "-n", "128", "-r", str(reps), "-o", "json"],
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)[0]["avg_ts"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--layouts", default="auto",
                    help="slmnode KV layouts to run side by side, e.g. split,unified; LAYOUT:MIB also sets "
                         "--cache-ram (unified:0 = no parking of idle prompt caches)")
    args = ap.parse_args()
    model = model_path()
    load_before = os.getloadavg()[0]
    system = " ".join(f"Rule {i}: answer with valid JSON and keep field {i} short." for i in range(70))
    procs: list[subprocess.Popen[bytes]] = []
    targets: list[Target] = []
    with tempfile.TemporaryDirectory() as home:
        try:
            env = {**os.environ, "SLMNODE_HOME": os.environ.get("SLMNODE_HOME", str(Path(model).parents[2]))}
            for spec in args.layouts.split(","):
                layout, _, cache_ram = spec.partition(":")
                port = free_port()
                extra = ["--cache-ram", cache_ram] if cache_ram else []
                procs.append(subprocess.Popen([sys.executable, "-m", "slmnode", "serve", "--port", str(port),
                                               "--threads", str(args.threads), "--ctx", str(args.ctx), "--parallel",
                                               "4", "--kv-layout", layout, "--chat-format", "gemma", *extra],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=home))
                wait_http(f"http://127.0.0.1:{port}/health", procs[-1])
                name = f"slmnode (HTTP, --parallel 4, --kv-layout {layout}{f', --cache-ram {cache_ram}' if cache_ram else ''})"
                t = Target(name, f"http://127.0.0.1:{port}", "default")
                t.model = t.http.get("/v1/models").json()["data"][0]["id"]
                targets.append(t)
            if (TOOLS / "llama-server").exists():
                lport = free_port()
                procs.append(subprocess.Popen(
                    [str(TOOLS / "llama-server"), "-m", model, "--host", "127.0.0.1", "--port", str(lport),
                     "-t", str(args.threads), "-c", str(args.ctx), "-b", "512", "-ub", "512", "-fa", "auto",
                     "-np", "4", "-kvu", "--no-webui", "--no-jinja", "--chat-template", "gemma"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                wait_http(f"http://127.0.0.1:{lport}/health", procs[-1])
                targets.append(Target("llama-server -np 4", f"http://127.0.0.1:{lport}", "default"))
            for t in targets:  # warm-up
                t.complete(PROMPTS[0], 8)
            for r in range(args.rounds):
                for t in targets:
                    print(f"round {r + 1}/{args.rounds}: {t.name}", file=sys.stderr)
                    t.round(system)
        finally:
            for p in procs:
                p.terminate()
                p.wait(30)
    tg128 = llama_bench_tg128(model, args.threads)
    rows = ["| server | 1 stream tok/s | 4 streams aggregate tok/s | 4 vs 1 | TTFT cold s | TTFT warm s | cold/warm "
            "| json_schema tok/s | free tok/s | grammar/free |", "|---|---|---|---|---|---|---|---|---|---|"]
    summary: dict[str, Any] = {"machine": platform.machine(), "cpus": os.cpu_count(), "threads": args.threads,
                               "rounds": args.rounds, "llama_bench_tg128": tg128, "targets": {},
                               "load_average": [load_before, os.getloadavg()[0]]}
    for t in targets:
        m = {k: t.med(k) for k in t.results}
        summary["targets"][t.name] = {"medians": m, "samples": t.results}
        rows.append(f"| {t.name} | {m['single_tps']:.1f} | {m['four_aggregate_tps']:.1f} | "
                    f"{m['four_aggregate_tps'] / m['single_tps']:.2f}× | {m['ttft_cold_s']:.2f} | {m['ttft_warm_s']:.3f} | "
                    f"{m['ttft_cold_s'] / m['ttft_warm_s']:.0f}× | {m['grammar_tps']:.1f} | {m['free_tps']:.1f} | "
                    f"{m['grammar_tps'] / m['free_tps']:.2f}× |")
    if tg128 is not None:
        rows.append(f"\nllama-bench tg128 (no HTTP, no sampling): {tg128:.1f} tok/s")
    server = next((t for t in targets if t.name.startswith("llama-server")), None)
    for t in targets:
        if server is None or t is server:
            continue
        a, b = summary["targets"][t.name]["medians"], summary["targets"][server.name]["medians"]
        rows.append(f"\n{t.name} / llama-server: 1 stream {a['single_tps'] / b['single_tps']:.2f}×, "
                    f"4 streams {a['four_aggregate_tps'] / b['four_aggregate_tps']:.2f}×, "
                    f"json_schema {a['grammar_tps'] / b['grammar_tps']:.2f}×"
                    + (f"; 1 stream / llama-bench tg128 {a['single_tps'] / tg128:.2f}×" if tg128 else ""))
    rows.append(f"\nload average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}"
                " (the box is shared: compare rows of one run)")
    out = ROOT / "benchmarks/results/batching.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
