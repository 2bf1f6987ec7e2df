"""Parking idle prompt caches in host RAM: what it costs and what it saves (in-process, real engine).

Each round, with parking on (``cache_ram_bytes`` 512 MiB) and off, in alternating order: a fresh
``BatchEngine`` (n_seq 4, unified KV) serves two requests with different ~1,100-token system prompts
(1 token each; their caches stay behind as idle slots), then one greedy 128-token request. Reported:
that request's ms per generated token (``usage.generation_ms``), on/off as a median of per-round
ratios; then the time to save and restore one ~1,100-token prompt, and the time to first token of a
request whose system prompt comes back from host RAM against evaluating it.

Usage: .venv/bin/python benchmarks/prompt_parking.py [--rounds 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import time
from pathlib import Path
from typing import Any

import llama_cpp
from _common import embedded_model

from slmnode.engine.batch import BatchEngine
from slmnode.engine.model import LoadedModel
from slmnode.engine.prompt_cache import HostPromptCache
from slmnode.engine.protocol import GenerationParams

RESULTS = Path(__file__).parent / "results" / "prompt_parking.json"


def system(tag: str) -> str:
    return f"Session {tag}. " + " ".join(f"Rule {i}: answer with valid JSON and keep field {i} short."
                                         for i in range(70)) + "\n"


def run(engine: BatchEngine, requests: list[tuple[str, str, int]]) -> dict[str, dict[str, Any]]:
    """(id, prompt, max_tokens) together; id -> usage."""
    events: list[dict[str, Any]] = []
    engine.send_all = events.extend
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
    for rid, prompt, n in requests:
        params = GenerationParams(max_tokens=n, temperature=0, stream=False,
                                  shared_prefix_chars=prompt.find("Question:") if "Question:" in prompt else 0)
        jobs.put({"op": "generate", "id": rid, "prompt": prompt, "params": params.model_dump()})
    jobs.put(None)
    engine.run(jobs)
    return {e["id"]: e["usage"] for e in events if e["ev"] == "done"}


def fresh_engine(lm: LoadedModel, threads: int, cache_ram: int) -> BatchEngine:
    llama_cpp.llama_memory_clear(lm.memory, True)
    return BatchEngine(lm, lambda _: None, threads, cache_ram_bytes=cache_ram)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    lm = embedded_model(args.threads)
    lm.warm_up()
    single = "1, 2, 3, 4,"
    ms: dict[str, list[float]] = {"on": [], "off": []}
    ratios: list[float] = []
    for r in range(args.rounds):
        got: dict[str, float] = {}
        for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
            engine = fresh_engine(lm, args.threads, 512 << 20 if mode == "on" else 0)
            run(engine, [("a", system(f"a{r}") + "Question: hi", 1), ("b", system(f"b{r}") + "Question: yo", 1)])
            u = run(engine, [("s", single, 128)])["s"]
            got[mode] = u["generation_ms"] / max(1, u["completion_tokens"] - 1)
            ms[mode].append(got[mode])
            engine.close()
        ratios.append(got["off"] / got["on"])
        print(f"round {r + 1}: on {got['on']:.2f} ms/token, off {got['off']:.2f} ms/token")

    # save / restore of one system prompt, and TTFT with it restored vs evaluated
    llama_cpp.llama_memory_clear(lm.memory, True)
    engine = fresh_engine(lm, args.threads, 512 << 20)
    prompt = system("p") + "Question: hi"
    run(engine, [("p", prompt, 1)])
    n_tokens = len(engine.slots[0].cells)
    parked = HostPromptCache(lm.ctx, 1 << 30, swa=lm.n_swa > 0)
    saves, restores = [], []
    seq = engine.slots[0].seq
    for _ in range(10):
        t0 = time.perf_counter()
        parked.save(seq, engine.slots[0].cells)
        saves.append(time.perf_counter() - t0)
        llama_cpp.llama_memory_seq_rm(lm.memory, seq, -1, -1)
        t0 = time.perf_counter()
        assert parked.restore(parked.entries[0], seq, n_tokens - 1)
        restores.append(time.perf_counter() - t0)
    nbytes = parked.entries[0].nbytes
    engine.close()
    ttft: dict[str, list[float]] = {"restored": [], "evaluated": []}
    for _ in range(3):
        engine = fresh_engine(lm, args.threads, 512 << 20)
        run(engine, [("p", prompt, 1)])
        run(engine, [("x", "Other text, other request.", 4), ("y", "More text.", 4)])  # p's slot parked
        u = run(engine, [("q", system("p") + "Question: what now?", 1)])["q"]
        assert u["cached_tokens"] > 1000, u
        ttft["restored"].append(u["prompt_ms"])
        engine.close()
        engine = fresh_engine(lm, args.threads, 0)
        u = run(engine, [("q", system("p") + "Question: what now?", 1)])["q"]
        ttft["evaluated"].append(u["prompt_ms"])
        engine.close()
    out = {
        "rounds": args.rounds, "threads": args.threads, "idle_prompt_tokens": n_tokens,
        "ms_per_token_parking_on": statistics.median(ms["on"]), "ms_per_token_parking_off": statistics.median(ms["off"]),
        "speedup_median_of_ratios": statistics.median(ratios),
        "save_ms": statistics.median(saves) * 1000, "restore_ms": statistics.median(restores) * 1000,
        "parked_mib": nbytes / 2**20,
        "ttft_restored_ms": statistics.median(ttft["restored"]), "ttft_evaluated_ms": statistics.median(ttft["evaluated"]),
        "samples": {"ms": ms, "ratios": ratios, "ttft": ttft},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
