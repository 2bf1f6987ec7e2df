"""Side-by-side figures on the embedded model, same threads and context, in one run:

  slmnode over HTTP  |  in-process llama-cpp-python  |  llama-cpp-python[server]  |  llama.cpp llama-server  |  llama-bench

HTTP targets run the `slmnode bench` workload interleaved (same fresh prompts, round by round);
in-process llama-cpp-python and llama-bench run in the same script just before. Flash attention off,
batch/ubatch 512 everywhere. Figures are reported as ratios to llama-bench (the ceiling: no HTTP,
no sampling over the 262k vocabulary).

Needs benchmarks/build_llama_tools.sh first (llama-bench, llama-server, the llama-cpp-python[server] venv).

Usage: .venv/bin/python benchmarks/side_by_side.py [--threads 2] [--ctx 2048] [--repeats 3] [--agent]
Prints a markdown section for docs/benchmarks.md; writes benchmarks/results/side_by_side.json and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slmnode.bench.client import parse_endpoint  # noqa: E402
from slmnode.bench.corpus import words  # noqa: E402
from slmnode.bench.plot import plot_report  # noqa: E402
from slmnode.bench.results import BenchReport, TargetResult, make_metric  # noqa: E402
from slmnode.bench.runner import BenchPlan, NodeConfig, machine, run_bench  # noqa: E402

TOOLS = Path(os.environ.get("SLMNODE_TOOLS_CACHE", Path.home() / ".cache/slmnode")) / "llama-tools/bin"
LCPP_VENV = Path(os.environ.get("SLMNODE_TOOLS_CACHE", Path.home() / ".cache/slmnode")) / "lcpp-server-venv"


def llama_bench(model: str, threads: int, repeats: int) -> dict[str, Any]:
    out = subprocess.run([str(TOOLS / "llama-bench"), "-m", model, "-t", str(threads), "-p", "128,512", "-n", "128",
                          "-b", "512", "-ub", "512", "-fa", "0", "-r", str(repeats), "-o", "json"],
                         check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    res: dict[str, Any] = {"build": rows[0].get("build_commit"), "cpu": rows[0].get("cpu_info")}
    for r in rows:
        key = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
        res[key] = r["samples_ts"]
    return res


def in_process(model: str, threads: int, ctx: int, repeats: int) -> dict[str, list[float]]:
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=model, n_ctx=ctx, n_threads=threads, n_threads_batch=threads, n_batch=512,
                          n_ubatch=512, flash_attn=False, verbose=False)
    load = time.perf_counter() - t0
    corpus = words()
    res: dict[str, list[float]] = {"model_load_s": [load], "pp128": [], "pp512": [], "tg128": []}
    for r in range(repeats + 1):  # round 0 is the warm-up
        for n in (128, 512):
            start = 5000 + 1500 * r + n
            toks = llm.tokenize(" ".join(corpus[start:start + n]).encode())[: n + 1]  # BOS + n tokens
            llm.reset()
            t = time.perf_counter()
            llm.create_completion(toks, max_tokens=1, temperature=0)
            if r:
                res[f"pp{n}"].append((len(toks) - 1) / (time.perf_counter() - t))
        llm.reset()
        toks = llm.tokenize(" ".join(corpus[20000 + 40 * r:20000 + 40 * r + 12]).encode())
        n_out, first = 0, None
        for _ in llm.create_completion(toks, max_tokens=128, temperature=0, stream=True):
            n_out += 1
            first = first or time.perf_counter()
        if r and first and n_out > 1:
            res["tg128"].append((n_out - 1) / (time.perf_counter() - first))
    del llm
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--agent", action="store_true", help="also run the agent jobs on every HTTP stack")
    args = ap.parse_args()
    for tool in (TOOLS / "llama-bench", TOOLS / "llama-server", LCPP_VENV / "bin/python"):
        if not tool.exists():
            raise SystemExit(f"{tool} is missing: run benchmarks/build_llama_tools.sh first")

    from slmnode.catalog.embedded import GEMMA3
    from slmnode.catalog.store import ModelStore

    home = Path(os.environ.get("SLMNODE_HOME") or tempfile.mkdtemp(prefix="slmnode-sbs-"))
    os.environ["SLMNODE_HOME"] = str(home)
    store = ModelStore(home / "models")
    model = str(store.path_of(store.ensure_embedded(GEMMA3.name)))
    t_, c_ = str(args.threads), str(args.ctx)

    load_before = os.getloadavg()[0]
    print("llama-bench ...", file=sys.stderr)
    lb = llama_bench(model, args.threads, args.repeats)
    print("in-process llama-cpp-python ...", file=sys.stderr)
    ip = in_process(model, args.threads, args.ctx, args.repeats)

    lcpp_port, ls_port = free_port(), free_port()
    servers = [
        subprocess.Popen([str(LCPP_VENV / "bin/python"), "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1",
                          "--port", str(lcpp_port), "--n_threads", t_, "--n_threads_batch", t_, "--n_ctx", c_,
                          "--n_batch", "512", "--n_ubatch", "512", "--flash_attn", "False"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([str(TOOLS / "llama-server"), "-m", model, "--host", "127.0.0.1", "--port", str(ls_port),
                          "-t", t_, "-c", c_, "-b", "512", "-ub", "512", "-fa", "off", "-np", "1", "--no-webui"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_http(f"http://127.0.0.1:{lcpp_port}/v1/models", servers[0])
        wait_http(f"http://127.0.0.1:{ls_port}/health", servers[1])
        workloads = ("cold", "pp128", "pp512", "tg128", "ttft") + (("agent",) if args.agent else ())
        plan = BenchPlan(repeats=args.repeats, warmup=1, workloads=workloads, label="side_by_side")
        os.environ.setdefault("SLMNODE_FLASH_ATTN", "false")  # every stack here runs without flash attention
        print("HTTP stacks, interleaved ...", file=sys.stderr)
        report = run_bench(plan, configs=[NodeConfig(threads=args.threads, ctx=args.ctx)],
                           vs=[parse_endpoint(f"http://127.0.0.1:{lcpp_port}/v1"),
                               parse_endpoint(f"http://127.0.0.1:{ls_port}/v1")],
                           tick=lambda what: print(f"  {what}", file=sys.stderr))
    finally:
        for p in servers:
            p.terminate()
            p.wait(timeout=30)

    node, lcpp, lserver = report.targets
    lcpp.label, lserver.label = "llama-cpp-python[server]", "llama-server"
    inproc = TargetResult(label="in-process llama-cpp-python", kind="endpoint", url="", model=node.model,
                          metrics={k: make_metric(k, v) for k, v in ip.items() if v})
    bench = TargetResult(label="llama-bench", kind="endpoint", url="", model=node.model,
                         metrics={k: make_metric(k, lb[k]) for k in ("pp128", "pp512", "tg128")})
    full = BenchReport(label="side_by_side", machine=machine(), repeats=args.repeats, warmup=1, workloads=list(workloads),
                       targets=[node, inproc, lcpp, lserver, bench])
    out_dir = ROOT / "benchmarks/results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "side_by_side.json").write_text(full.model_dump_json(indent=2))
    plot_report(full, out_dir / "side_by_side.png")

    def med(t: TargetResult, k: str) -> float | None:
        return t.metrics[k].median if k in t.metrics else None

    def cell(t: TargetResult, k: str, ref: float | None) -> str:
        v = med(t, k)
        return "–" if v is None else (f"{v / ref:.2f}" if ref else f"{v:.3g}")

    base = {k: med(bench, k) for k in ("pp128", "pp512", "tg128")}
    stacks = [node, inproc, lcpp, lserver, bench]
    names = ["slmnode (HTTP)", "in-process llama-cpp-python", "llama-cpp-python[server]", "llama-server", "llama-bench"]
    lines = [f"Machine: {full.machine}; llama.cpp build {lb['build']} (llama-bench); threads {args.threads}, "
             f"ctx {args.ctx}, batch/ubatch 512, flash attention off; medians of {args.repeats} after 1 warm-up; "
             f"1-min load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end.",
             "", "Ratio to llama-bench (1.00 = llama.cpp's own ceiling; HTTP rates are client-side, as an agent sees them):",
             "", "| stack | pp128 | pp512 | tg128 |", "|---|---|---|---|"]
    for name, t in zip(names, stacks):
        lines.append(f"| {name} | " + " | ".join(cell(t, k, base[k]) for k in ("pp128", "pp512", "tg128")) + " |")
    lines += ["", "Ratios between the HTTP stacks (slmnode ÷ other; >1 = slmnode better):", "",
              "| metric | vs llama-cpp-python[server] | vs llama-server |", "|---|---|---|"]
    for k in ("pp512", "tg128", "tg128_server", "ttft_s", "ttft_fresh_s"):
        if k not in node.metrics:
            continue
        hib = node.metrics[k].higher_is_better
        row = []
        for o in (lcpp, lserver):
            if k in o.metrics:
                a, b = node.metrics[k].median, o.metrics[k].median
                row.append(f"{(a / b if hib else b / a):.2f}")
            else:
                row.append("–")
        lines.append(f"| {k} | " + " | ".join(row) + " |")
    lines += ["", f"slmnode cold start (process → first token) {node.metrics['cold_start_s'].median:.2f} s, "
              f"model load {node.metrics['model_load_s'].median:.2f} s; in-process load {ip['model_load_s'][0]:.2f} s."]
    for t in (node, lcpp, lserver):
        for w, why in t.errors.items():
            lines.append(f"- {t.label}: {w} not measured: {why}")
        for j in t.jobs:
            if j.error or not j.all_valid:
                why = j.error or "; ".join(r.problems[0] for r in j.runs if r.problems)[:160]
                lines.append(f"- {t.label}: agent job {j.name} failed: {why}")
            elif j.wall_s:
                lines.append(f"- {t.label}: agent job {j.name} {j.wall_s.median:.2f} s, {j.steps} steps, all valid")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
