"""Unified vs split KV cache: a decoding sequence's per-token time alone and beside idle cached prefixes.

In a unified cache, a sequence's attention spans every used cell (other sequences' cells are
masked, not skipped); in a split cache every sequence has its own cells. Measured in-process on the
embedded model with the engine's own ``LoadedModel`` (n_seq 4): per-token ``llama_decode`` time of
sequence 0 with 0 and with 2 other sequences holding ``--idle`` tokens each.

Usage: .venv/bin/python benchmarks/kv_layout.py [--threads 2] [--ctx 4096] [--idle 1100] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import llama_cpp

from slmnode.catalog.store import ModelStore
from slmnode.engine.model import LoadedModel


def per_token_ms(lm: LoadedModel, idle_seqs: int, idle_tokens: int, steps: int = 60) -> float:
    b = llama_cpp.llama_batch_init(512, 0, 1)
    try:
        llama_cpp.llama_memory_clear(lm.memory, True)

        def fill(seq: int, n: int) -> None:
            done = 0
            while done < n:
                k = min(512, n - done)
                for i in range(k):
                    b.token[i], b.pos[i], b.n_seq_id[i] = 1000 + (done + i) % 500, done + i, 1
                    b.seq_id[i][0], b.logits[i] = seq, 0
                b.n_tokens = k
                assert llama_cpp.llama_decode(lm.ctx, b) == 0
                done += k

        for s in range(1, 1 + idle_seqs):
            fill(s, idle_tokens)
        fill(0, 30)
        times, pos = [], 30
        for _ in range(steps):
            b.token[0], b.pos[0], b.n_seq_id[0] = 2000, pos, 1
            b.seq_id[0][0], b.logits[0] = 0, 1
            b.n_tokens = 1
            t0 = time.perf_counter()
            llama_cpp.llama_decode(lm.ctx, b)
            times.append(time.perf_counter() - t0)
            pos += 1
        return statistics.median(times[10:]) * 1000
    finally:
        llama_cpp.llama_batch_free(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--idle", type=int, default=1100)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    store = ModelStore()
    path = str(store.path_of(store.ensure_embedded()))
    print("| layout | alone ms/token | beside 2 idle prefixes ms/token | slowdown |")
    print("|---|---|---|---|")
    for _ in range(args.repeats):
        for split in (False, True):
            lm = LoadedModel(path, n_ctx=args.ctx, n_threads=args.threads, n_batch=512, n_ubatch=512, n_seq=4,
                             kv_split=split)
            alone, beside = per_token_ms(lm, 0, args.idle), per_token_ms(lm, 2, args.idle)
            print(f"| {'split' if split else 'unified'} | {alone:.2f} | {beside:.2f} | {beside / alone:.2f}× |",
                  flush=True)
            del lm


if __name__ == "__main__":
    main()
