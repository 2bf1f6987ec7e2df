"""What the llama.cpp build inside llama-cpp-python can do, and how fast it runs here.

The one place that calls ``llama_cpp.llama_print_system_info()``. Its line looks like
``CPU : SSE3 = 1 | AVX2 = 1 | ... | REPACK = 1 |`` (new builds) or
``AVX = 0 | NEON = 1 | ARM_FMA = 1 | ...`` (old builds, e.g. ``system_info:`` lines in logs).
:func:`parse_system_info` turns either form into a set of enabled feature names.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

_PAIR = re.compile(r"([A-Za-z0-9_]+)\s*=\s*(\d+)")


def parse_system_info(text: str) -> dict[str, int]:
    """``"CPU : NEON = 1 | DOTPROD = 0 |"`` -> ``{"NEON": 1, "DOTPROD": 0}`` (n_threads dropped)."""
    out: dict[str, int] = {}
    for name, value in _PAIR.findall(text):
        if name.lower() in ("n_threads",):
            continue
        out[name.upper()] = int(value)
    return out


def system_info() -> str:
    """The raw ``llama_print_system_info()`` line of the installed llama.cpp build."""
    import llama_cpp

    raw = llama_cpp.llama_print_system_info()
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def build_features() -> dict[str, int]:
    """Feature flags of the installed build (empty if llama_cpp cannot be imported)."""
    try:
        return parse_system_info(system_info())
    except ImportError:
        return {}


@dataclass(frozen=True)
class ThroughputMeasurement:
    model_path: str
    threads: int
    n_prompt: int
    n_gen: int
    prompt_tps: float
    gen_tps: float
    load_seconds: float


def measure_throughput(
    model_path: str | Path, *, threads: int, n_prompt: int = 256, n_gen: int = 32, repeats: int = 2
) -> ThroughputMeasurement:
    """Time a prompt batch and single-token decode steps like llama-bench does (no sampling).

    Median of ``repeats`` runs; each run clears the KV cache first.
    """
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=str(model_path), n_ctx=max(512, n_prompt + n_gen + 16), n_threads=threads,
        n_threads_batch=threads, n_batch=512, n_ubatch=512, verbose=False,
    )
    load = time.perf_counter() - t0
    vocab = llm.n_vocab()
    prompt = [llm.token_bos()] + [(i * 7919) % (vocab - 1000) + 500 for i in range(n_prompt - 1)]
    pps, gps = [], []
    try:
        for _ in range(repeats):
            llm.reset()
            llm._ctx.kv_cache_clear()
            t = time.perf_counter()
            llm.eval(prompt)
            pps.append(n_prompt / (time.perf_counter() - t))
            t = time.perf_counter()
            for i in range(n_gen):
                llm.eval([(i * 104729) % (vocab - 1000) + 500])
            gps.append(n_gen / (time.perf_counter() - t))
    finally:
        llm.close()
    pps.sort()
    gps.sort()
    return ThroughputMeasurement(
        str(model_path), threads, n_prompt, n_gen, pps[len(pps) // 2], gps[len(gps) // 2], load
    )
