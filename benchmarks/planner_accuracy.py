"""Planner accuracy: predictions vs measurements (issue 3).

Part A, this machine. Calibrate exactly as ``slmnode plan --calibrate`` does (embedded Gemma 3
270M Q4_K_M, 256-token prompt + 32 decode steps), then predict and measure, in a fresh
subprocess per row, at two context sizes:
  - RAM: RSS growth from just after ``import llama_cpp`` to after the context is filled
    (prompt batches up to ctx - 64 tokens): weights + repacked copies + KV + compute + runtime;
  - pp512 and tg128 tok/s (llama-bench shapes, no sampling), median of --repeats.
The embedded Q4_K_M is the calibration model (its speed rows are a fit, not a test). Held-out
variants are made from it with llama.cpp's quantizer (Q8_0, F16, Q4_0 via allow_requantize):
same architecture, different bytes per token and kernels, so they test the bytes-based model.

Part B, the pi4-8gb profile vs the real Raspberry Pi 4 measurements in tests/data/llama-bench/
(copied from /work/shared/data/llama-bench; PROVENANCE.md says what each file measured).

Speed rows are interleaved rounds (calibrate, then measure every variant), each round predicted
from its own calibration; the table shows the median per-round error, so load from other
processes on a shared machine moves prediction and measurement together.

Usage: .venv/bin/python benchmarks/planner_accuracy.py [--threads 2] [--ctx 2048 8192] [--repeats 3]
Prints markdown for docs/benchmarks.md; writes the raw numbers to WORKDIR/planner_accuracy.json.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slmnode.catalog.embedded import GEMMA3  # noqa: E402
from slmnode.catalog.quants import get_quant  # noqa: E402
from slmnode.catalog.resolve import resolve_family  # noqa: E402
from slmnode.catalog.store import ModelStore  # noqa: E402
from slmnode.engine.build_info import build_features, measure_throughput  # noqa: E402
from slmnode.hardware.probe import probe  # noqa: E402
from slmnode.planner.calibrate import profile_from_measurement, repack_types_for  # noqa: E402
from slmnode.planner.memory import estimate_ram  # noqa: E402
from slmnode.planner.model_facts import facts_from_family, facts_from_gguf  # noqa: E402
from slmnode.planner.plan import plan_row  # noqa: E402
from slmnode.planner.profiles import get_profile  # noqa: E402
from slmnode.planner.speed import predict_speed  # noqa: E402

MiB = 1 << 20

MEASURE = r"""
import json, sys, time, psutil
import llama_cpp
path, ctx, threads, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
proc = psutil.Process()
base = proc.memory_info().rss
llm = llama_cpp.Llama(model_path=path, n_ctx=ctx, n_threads=threads, n_threads_batch=threads,
                      n_batch=512, n_ubatch=512, verbose=False)
vocab = llm.n_vocab()
tok = lambda i: (i * 7919) % (vocab - 1000) + 500
out = {}
if mode == "speed":  # llama-bench shapes: pp512, then tg128 from an empty context
    prompt = [llm.token_bos()] + [tok(i) for i in range(511)]
    t = time.perf_counter(); llm.eval(prompt); out["pp"] = 512 / (time.perf_counter() - t)
    llm.reset(); llm._ctx.kv_cache_clear()
    t = time.perf_counter()
    for i in range(128):
        llm.eval([tok(10007 * i)])
    out["tg"] = 128 / (time.perf_counter() - t)
else:  # fill the context, then RSS and 32 decode steps at that depth
    llm.eval([llm.token_bos()] + [tok(i) for i in range(ctx - 65)])
    out["rss_growth"] = proc.memory_info().rss - base
    t = time.perf_counter()
    for i in range(32):
        llm.eval([tok(10007 * i)])
    out["tg_deep"] = 32 / (time.perf_counter() - t)
print(json.dumps(out))
"""


def measure(path: Path, ctx: int, threads: int, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(ctx), str(threads), mode],
                         capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def requantize(src: Path, dst: Path, ftype: int) -> Path:
    import llama_cpp

    if dst.exists():
        return dst
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        dst.unlink(missing_ok=True)
        raise RuntimeError(f"quantize to ftype {ftype} failed ({rc})")
    return dst


def err(pred: float, meas: float) -> str:
    return f"{(pred - meas) / meas * 100:+.0f}%"


def calibrate(src: Path, threads: int, hw, build) -> tuple:  # type: ignore[no-untyped-def]
    m = measure_throughput(src, threads=threads)
    profile = profile_from_measurement(
        facts_from_gguf(src), prompt_tps=m.prompt_tps, gen_tps=m.gen_tps, n_prompt=m.n_prompt,
        n_gen=m.n_gen, threads=threads, cores=threads, ram_bytes=hw.memory.total_bytes or 0,
        arch=hw.cpu.arch or "?", cpu_features=hw.cpu.llama_features,
        repack_types=repack_types_for(hw.cpu.arch or "", set(hw.cpu.flags), build), description="bench")
    return m, profile


def part_a(args: argparse.Namespace, work: Path) -> tuple[list[dict], dict]:
    """Speed: interleaved rounds (calibrate, then every variant), each round predicted from its own
    calibration, so load from other processes hits prediction and measurement alike; medians.
    RAM: one context fill per (variant, ctx); RSS does not depend on load."""
    import llama_cpp

    store = ModelStore(work / "models")
    src = store.path_of(store.ensure_embedded(GEMMA3.name))
    hw = probe("/", model_dir=work)
    build = build_features()
    variants = [("Q4_K_M (calibration model)", src, True)]
    for name, ftype in (("Q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0), ("F16", llama_cpp.LLAMA_FTYPE_MOSTLY_F16),
                        ("Q4_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0)):
        variants.append((name, requantize(src, work / f"gemma3-270m-{name}.gguf", ftype), False))
    samples: dict[tuple[str, int], list[dict]] = {}
    calibs = []
    for rnd in range(args.repeats):
        m, profile = calibrate(src, args.threads, hw, build)
        calibs.append((m, profile))
        for label, path, _ in variants:
            facts = facts_from_gguf(path)
            for ctx in args.ctx:
                got = measure(path, ctx, args.threads, "speed")
                sp = predict_speed(facts, profile, threads=args.threads, ctx=ctx)
                samples.setdefault((label, ctx), []).append(
                    {"pp_err": sp.prompt_tps / got["pp"] - 1, "tg_err": sp.gen_tps / got["tg"] - 1,
                     "pp_pred": sp.prompt_tps, "pp_meas": got["pp"], "tg_pred": sp.gen_tps, "tg_meas": got["tg"]})
                print(f"  round {rnd} {label} ctx {ctx}: {samples[(label, ctx)][-1]}", file=sys.stderr)
    med = statistics.median
    profile = calibs[-1][1]
    rows = []
    for label, path, fit in variants:
        facts = facts_from_gguf(path)
        for ctx in args.ctx:
            ram = estimate_ram(facts, ctx, repack_types=profile.repack_types)
            deep = measure(path, ctx, args.threads, "ram")
            # gen at depth predicted from the median calibration
            mid = sorted(calibs, key=lambda c: c[0].gen_tps)[len(calibs) // 2][1]
            deep_pred = predict_speed(facts, mid, threads=args.threads, ctx=ctx).gen_tps_full_ctx
            ss = samples[(label, ctx)]
            rows.append({"model": label, "ctx": ctx, "fit": fit, "ram_pred": ram.total,
                         "ram_meas": deep["rss_growth"], "ram_parts": ram.to_dict(),
                         "pp_pred": med(x["pp_pred"] for x in ss), "pp_meas": med(x["pp_meas"] for x in ss),
                         "pp_err": med(x["pp_err"] for x in ss),
                         "tg_pred": med(x["tg_pred"] for x in ss), "tg_meas": med(x["tg_meas"] for x in ss),
                         "tg_err": med(x["tg_err"] for x in ss), "tg_deep_pred": deep_pred,
                         "tg_deep_meas": deep["tg_deep"], "samples": ss})
            print(f"  RAM {label} ctx {ctx}: {rows[-1]['ram_parts']} meas {deep}", file=sys.stderr)
    calib = {"pp256": med(c[0].prompt_tps for c in calibs), "tg32": med(c[0].gen_tps for c in calibs),
             "gen_bandwidth_GBs": med(c[1].gen_bandwidth for c in calibs) / 1e9,
             "prompt_GFLOPs": med(c[1].prompt_flops for c in calibs) / 1e9,
             "repack_types": profile.repack_types}
    return rows, calib


# Real Raspberry Pi 4 (BCM2711, Cortex-A72) measurements. "fit" rows set the profile's numbers.
PI4_ROWS = [
    ("smollm-135m", "Q2_K", "tg", 32.67, False,
     "yzma BENCHMARKS.md, Pi 4 8GB, 4 threads, median of 5 (32.47-33.56)",
     "pi4b-8gb_yzma_smollm135m_BENCHMARKS_excerpt.md"),
    ("smollm-135m", "Q2_K", "tg", 28.8, False,
     "yzma benchmarks/linux.md, Pi 4 Rev 1.4, llama.cpp b10964, nctx 8192, median of 5",
     "pi4b-rev1.4_yzma_benchmarks-linux-md_excerpt.md"),
    ("tinyllama-1.1b", "Q8_0", "tg", 3.0, True, "llama.cpp 2024-03-26, RPI4 (llamafile blog table)",
     "pi4-vs-pi5_justine-llamafile-blog_via-guevara-read-it-later-11711_table_excerpt.html"),
    ("tinyllama-1.1b", "Q8_0", "pp", 10.0, True, "same table, prompt column", "same"),
    ("tinyllama-1.1b", "F16", "tg", 2.0, False, "same table, f16 row", "same"),
    ("tinyllama-1.1b", "F16", "pp", 3.0, False, "same table, f16 row, prompt column", "same"),
    ("llama3.2-3b", "Q4_K_M", "tg", 1.60, False, "Ollama eval rate, Pi 400 4GB (same BCM2711 SoC)",
     "geerlingguy_ai-benchmarks_README_llama3.2-3b_ollama_table_excerpt.md"),
]


def part_b() -> list[dict]:
    prof = get_profile("pi4-8gb")
    rows = []
    for model, quant, kind, measured, fit, what, src in PI4_ROWS:
        facts = facts_from_family(resolve_family(model), get_quant(quant))
        s = predict_speed(facts, prof)
        pred = s.gen_tps if kind == "tg" else s.prompt_tps
        rows.append({"model": model, "quant": quant, "kind": kind, "pred": pred, "meas": measured,
                     "fit": fit, "what": what, "source": src})
    # LLaMA 7B q4_0 on a 4 GB Pi 4: "about 10 sec/token" with 5.2 GB of swap in use.
    facts = facts_from_family(resolve_family("llama-7b"), get_quant("Q4_0"))
    r = plan_row(facts, get_profile("pi4-4gb"), ctx=512, instruct=False)
    rows.append({"model": "llama-7b", "quant": "Q4_0", "kind": "fit?", "pred": r.gen_tps, "meas": 0.1,
                 "fit": False, "what": f"pi4-4gb plan: fits={r.fits}, interactive={r.interactive}",
                 "source": "pi4b-4gb_llama.cpp-issue58_description_excerpt.txt"})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, nargs="+", default=[2048, 8192])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "slmnode-planner-accuracy")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ["SLMNODE_HOME"] = str(args.workdir)
    a_rows, calib = part_a(args, args.workdir)
    b_rows = part_b()
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {probe('/').cpu.model}, load avg {os.getloadavg()[0]:.1f}"
    print(f"Machine: {machine}; threads {args.threads}; repeats {args.repeats} (medians)\n")
    print(f"Calibration: pp256 {calib['pp256']:.1f} tok/s, tg32 {calib['tg32']:.1f} tok/s -> "
          f"{calib['gen_bandwidth_GBs']:.2f} GB/s effective, {calib['prompt_GFLOPs']:.1f} GFLOP/s; "
          f"repacked types {', '.join(calib['repack_types']) or 'none'}\n")
    print("| model (Gemma 3 270M) | ctx | RAM pred | RAM meas | err | pp512 pred/meas | err "
          "| tg128 pred/meas | err | tg at ctx-64 pred/meas | err |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in a_rows:
        print(f"| {r['model']} | {r['ctx']} | {r['ram_pred'] / MiB:.0f} MiB | {r['ram_meas'] / MiB:.0f} MiB | "
              f"{err(r['ram_pred'], r['ram_meas'])} | {r['pp_pred']:.0f} / {r['pp_meas']:.0f} | "
              f"{r['pp_err'] * 100:+.0f}% | {r['tg_pred']:.1f} / {r['tg_meas']:.1f} | {r['tg_err'] * 100:+.0f}% | "
              f"{r['tg_deep_pred']:.1f} / {r['tg_deep_meas']:.1f} | {err(r['tg_deep_pred'], r['tg_deep_meas'])} |")
    print("\n| Pi 4 row | quant | test | pred | measured | err | role | source |")
    print("|---|---|---|---:|---:|---:|---|---|")
    for r in b_rows:
        print(f"| {r['model']} | {r['quant']} | {r['kind']} | {r['pred']:.2f} | {r['meas']:.2f} | "
              f"{err(r['pred'], r['meas'])} | {'fit' if r['fit'] else 'held out'} | {r['what']} |")
    out = args.workdir / "planner_accuracy.json"
    print(f"\nraw numbers: {out}", file=sys.stderr)
    out.write_text(json.dumps({"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
                               "calibration": calib, "this_machine": a_rows, "pi4": b_rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
