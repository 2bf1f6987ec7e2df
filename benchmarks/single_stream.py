"""Issue 6's single-stream targets with many samples: slmnode vs llama-server, request by request.

Each round sends the same greedy /v1/completions request (128 tokens) to ``slmnode serve`` (default
settings, ``--parallel 4``) and to ``llama-server -np 4 -kvu``, and runs ``llama-bench`` tg128 once
(``-r 1``), in an order that rotates round by round. tok/s of a request = completion tokens / wall
time of the request (prompt, HTTP and all). Each round also streams the same request to both servers:
generation tok/s as a streaming client sees it = tokens after the first / time from the first to
the last text chunk (slmnode coalesces a stream's text to one event per 40 ms, llama-server sends
one per token). Reported: medians, the ratio of medians and the median of per-round ratios (a
round's runs are back to back, so slow drifts of the machine cancel; this VM's speed drifts by
10-20 % within minutes).

With ``--idle-prompts N`` every server first gets N chat requests with different ~1,100-token system
prompts (1 token each), so the rounds run beside N idle cached prompts, as agents leave them; a
third server, ``slmnode serve --cache-ram 0`` (no parking of idle prompt caches), joins the rounds.

Usage: cd benchmarks && ../.venv/bin/python single_stream.py [--rounds 30] [--threads 2] [--ctx 4096]
       [--idle-prompts 3]
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
from collections.abc import Callable
from pathlib import Path

import httpx
from _common import free_port, wait_http
from batching import TOOLS, llama_bench_tg128, model_path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["1, 2, 3, 4,"]  # as batching.py: a greedy continuation that runs the full 128 tokens


def tps(client: httpx.Client, model: str, prompt: str) -> float:
    body = {"model": model, "prompt": prompt, "max_tokens": 128, "temperature": 0}
    try:
        t0 = time.perf_counter()
        r = client.post("/v1/completions", json=body)
    except httpx.RemoteProtocolError:  # a kept-alive connection the server had closed (seen with llama-server)
        t0 = time.perf_counter()
        r = client.post("/v1/completions", json=body)
    r.raise_for_status()
    return int(r.json()["usage"]["completion_tokens"]) / (time.perf_counter() - t0)


def stream_tps(client: httpx.Client, model: str, prompt: str) -> float:
    """Generation tok/s seen by a streaming client: tokens after the first / time from first to last text."""
    body = {"model": model, "prompt": prompt, "max_tokens": 128, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    first = last = 0.0
    n = 0
    with client.stream("POST", "/v1/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0].get("text"):
                last = time.perf_counter()
                first = first or last
            if chunk.get("usage"):
                n = int(chunk["usage"]["completion_tokens"])
    return (n - 1) / (last - first) if last > first else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", "--pairs", dest="pairs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--idle-prompts", type=int, default=0,
                    help="leave this many ~1,100-token system prompts cached in idle slots first; adds slmnode --cache-ram 0")
    args = ap.parse_args()
    model = model_path()
    procs: list[subprocess.Popen[bytes]] = []
    samples: dict[str, list[float]] = {"slmnode": [], "llama-server": [], "llama-bench tg128": [],
                                       "slmnode stream": [], "llama-server stream": []}
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
                 "-t", str(args.threads), "-c", str(args.ctx), "-b", "512", "-ub", "512", "-fa", "auto",
                 "-np", "4", "-kvu", "--no-webui"], stdout=subprocess.DEVNULL,
                stderr=(Path(home) / "llama-server.log").open("wb")))
            wait_http(f"http://127.0.0.1:{lport}/health", procs[-1])
            if args.idle_prompts:
                nport = free_port()
                procs.append(subprocess.Popen([sys.executable, "-m", "slmnode", "serve", "--port", str(nport),
                                               "--threads", str(args.threads), "--ctx", str(args.ctx), "--parallel",
                                               "4", "--cache-ram", "0"],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=home))
                wait_http(f"http://127.0.0.1:{nport}/health", procs[-1])
                unparked = httpx.Client(base_url=f"http://127.0.0.1:{nport}", timeout=300)
                samples["slmnode --cache-ram 0"] = []
            ours = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
            theirs = httpx.Client(base_url=f"http://127.0.0.1:{lport}", timeout=300)
            name = ours.get("/v1/models").json()["data"][0]["id"]
            for _ in range(2):  # warm-up
                tps(ours, name, PROMPTS[0])
                tps(theirs, "default", PROMPTS[0])
            rules = " ".join(f"Rule {i}: answer with valid JSON and keep field {i} short." for i in range(70))
            for k in range(args.idle_prompts):
                for c, m in [(ours, name), (theirs, "default"), (unparked, name)]:
                    c.post("/v1/chat/completions", json={"model": m, "max_tokens": 1, "messages": [
                        {"role": "system", "content": f"Agent {k}. {rules}"}, {"role": "user", "content": "Ready?"}]})
            for i in range(args.pairs):
                prompt = PROMPTS[i % len(PROMPTS)]
                order: list[tuple[str, Callable[[], float]]] = [
                    ("slmnode", lambda p=prompt: tps(ours, name, p)),
                    ("llama-server", lambda p=prompt: tps(theirs, "default", p)),
                    ("llama-bench tg128", lambda: llama_bench_tg128(model, args.threads, reps=1) or 0.0),
                    ("slmnode stream", lambda p=prompt: stream_tps(ours, name, p)),
                    ("llama-server stream", lambda p=prompt: stream_tps(theirs, "default", p))]
                if args.idle_prompts:
                    order.insert(1, ("slmnode --cache-ram 0", lambda p=prompt: tps(unparked, name, p)))
                for key, run in order[i % len(order):] + order[: i % len(order)]:
                    samples[key].append(run())
                print(f"round {i + 1}/{args.pairs}", file=sys.stderr)
        except httpx.HTTPError:
            log = Path(home) / "llama-server.log"
            print(f"llama-server exit code {procs[1].poll()}; its log ends:", file=sys.stderr)
            print(log.read_text(errors="replace")[-3000:] if log.exists() else "(none)", file=sys.stderr)
            raise
        finally:
            for p in procs:
                p.terminate()
                p.wait(30)
    med = {k: statistics.median(v) for k, v in samples.items()}

    def pair_ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(samples[a], samples[b], strict=True) if y)

    have_bench = all(samples["llama-bench tg128"])
    result = {"rounds": args.pairs, "threads": args.threads, "samples": samples, "medians": med,
              "slmnode/llama-server": pair_ratio("slmnode", "llama-server"),
              "slmnode/llama-bench": pair_ratio("slmnode", "llama-bench tg128") if have_bench else None,
              "llama-server/llama-bench": pair_ratio("llama-server", "llama-bench tg128") if have_bench else None,
              "stream: slmnode/llama-server": pair_ratio("slmnode stream", "llama-server stream"),
              "stream: slmnode/llama-bench": pair_ratio("slmnode stream", "llama-bench tg128") if have_bench else None,
              "stream: llama-server/llama-bench": (pair_ratio("llama-server stream", "llama-bench tg128")
                                                   if have_bench else None),
              "load_average": os.getloadavg()[0], "idle_prompts": args.idle_prompts}
    if args.idle_prompts:
        result["slmnode --cache-ram 0/llama-server"] = pair_ratio("slmnode --cache-ram 0", "llama-server")
        result["slmnode/slmnode --cache-ram 0"] = pair_ratio("slmnode", "slmnode --cache-ram 0")
        print(f"beside {args.idle_prompts} idle prompts: slmnode / llama-server {result['slmnode/llama-server']:.3f}×, "
              f"slmnode --cache-ram 0 / llama-server {result['slmnode --cache-ram 0/llama-server']:.3f}×, "
              f"parking on / off {result['slmnode/slmnode --cache-ram 0']:.3f}×")
    out_name = "single_stream_idle.json" if args.idle_prompts else "single_stream.json"
    (ROOT / "benchmarks/results" / out_name).write_text(json.dumps(result, indent=2))
    print("| rounds | slmnode tok/s | llama-server tok/s | llama-bench tg128 | slmnode / llama-server "
          "(median of round ratios; ratio of medians) | slmnode / tg128 | llama-server / tg128 |\n"
          "|---|---|---|---|---|---|---|")
    bench = (f"{med['llama-bench tg128']:.1f} | {result['slmnode/llama-bench']:.3f}× | "
             f"{result['llama-server/llama-bench']:.3f}×") if have_bench else "– | – | –"
    print(f"| {args.pairs} | {med['slmnode']:.1f} | {med['llama-server']:.1f} | {bench.split(' | ')[0]} | "
          f"{result['slmnode/llama-server']:.3f}×; {med['slmnode'] / med['llama-server']:.3f}× | "
          f"{' | '.join(bench.split(' | ')[1:])} |")
    sb = (f"{result['stream: slmnode/llama-bench']:.3f}× | {result['stream: llama-server/llama-bench']:.3f}×"
          if have_bench else "– | –")
    print(f"| {args.pairs}, streaming: generation tok/s from first to last token | {med['slmnode stream']:.1f} | "
          f"{med['llama-server stream']:.1f} | {bench.split(' | ')[0]} | {result['stream: slmnode/llama-server']:.3f}×; "
          f"{med['slmnode stream'] / med['llama-server stream']:.3f}× | {sb} |")


if __name__ == "__main__":
    main()
