"""Per-chunk logits and raw speed from llama.cpp, for the quant lab (perplexity, KL divergence).

One of the few modules that import ``llama_cpp`` (deferred to construction). Full logits are one
float per vocabulary entry per position (262,144 floats = 1 MiB for Gemma 3), so a chunk is
evaluated in ``n_batch`` pieces and only the positions asked for return logits: memory is bounded
by ``n_batch`` MiB per model, never a whole context's logits. The math lives in ``slmnode.lab``.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slmnode.errors import EngineError, ModelFormatError, ModelLoadError, RequestError


class LogitScorer:
    """A model loaded for scoring: ``chunk_logits`` evaluates one chunk from an empty context."""

    def __init__(self, model_path: str | Path, *, n_ctx: int, n_batch: int = 64, threads: int | None = None) -> None:
        import llama_cpp

        self._lc = llama_cpp
        path = Path(model_path)
        if not path.is_file():
            raise ModelFormatError(f"no such model file: {path}")
        self.n_ctx, self.n_batch = n_ctx, max(1, min(n_batch, n_ctx))
        threads = threads or os.cpu_count() or 1
        try:
            self.llm: Any = llama_cpp.Llama(
                model_path=str(path), n_ctx=n_ctx, n_batch=self.n_batch, n_ubatch=self.n_batch,
                n_threads=threads, n_threads_batch=threads, logits_all=False, verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {path.name}: {exc}") from exc
        self.n_vocab: int = self.llm.n_vocab()
        self.bos: int = self.llm.token_bos()
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False))

    def _clear(self) -> None:
        self._lc.llama_memory_clear(self._lc.llama_get_memory(self.llm.ctx), True)

    def _decode(self, tokens: Sequence[int], pos0: int, want: Sequence[bool]) -> None:
        b = self._batch
        for i, tok in enumerate(tokens):
            b.token[i], b.pos[i], b.n_seq_id[i] = tok, pos0 + i, 1
            b.seq_id[i][0] = 0
            b.logits[i] = want[i]
        b.n_tokens = len(tokens)
        rc = self._lc.llama_decode(self.llm.ctx, b)
        if rc != 0:
            raise EngineError(f"llama_decode failed (code {rc}) at position {pos0}")

    def _outputs(self, n: int) -> np.ndarray:
        ptr = self._lc.llama_get_logits(self.llm.ctx)
        arr = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n * self.n_vocab,))
        return arr.reshape(n, self.n_vocab)

    def chunk_logits(self, tokens: Sequence[int], first: int, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Evaluate ``tokens`` from position 0; yield ``(i0, logits)`` for positions ``first..stop-1``.

        ``logits[j]`` is the next-token distribution after position ``i0 + j``; it is a view of
        llama.cpp's buffer, valid only until the next step of this iterator.
        """
        if len(tokens) > self.n_ctx:
            raise RequestError(f"chunk of {len(tokens)} tokens exceeds the context of {self.n_ctx}")
        stop = len(tokens) if stop is None else stop
        self._clear()
        for start in range(0, stop, self.n_batch):
            piece = tokens[start:min(start + self.n_batch, stop)]
            want = [first <= start + i < stop for i in range(len(piece))]
            self._decode(piece, start, want)
            n_out = sum(want)
            if n_out:
                yield start + want.index(True), self._outputs(n_out)

    def close(self) -> None:
        if self._batch is not None:
            self._lc.llama_batch_free(self._batch)
            self._batch = None
        self.llm.close()

    def __enter__(self) -> LogitScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class SpeedResult:
    prompt_tps: float  # median over reps, prompt of n_prompt tokens
    generation_tps: float  # median over reps, n_gen greedy tokens (argmax, no sampler)
    n_prompt: int
    n_gen: int
    reps: int
    threads: int


def measure_speed(
    model_path: str | Path, tokens: Sequence[int], *, n_prompt: int = 256, n_gen: int = 32, reps: int = 3,
    threads: int | None = None, n_batch: int = 512,
) -> SpeedResult:
    """Prompt and generation tok/s of one model on this box (like llama-bench pp/tg, medians)."""
    threads = threads or os.cpu_count() or 1
    prompt = list(tokens[:n_prompt])
    if len(prompt) < n_prompt:
        raise RequestError(f"speed test needs {n_prompt} prompt tokens, the corpus gave {len(prompt)}")
    scorer = LogitScorer(model_path, n_ctx=n_prompt + n_gen + 1, n_batch=n_batch, threads=threads)
    pp: list[float] = []
    tg: list[float] = []
    try:
        for _ in range(reps + 1):  # first round warms caches and is dropped
            scorer._clear()
            t0 = time.perf_counter()
            for start in range(0, n_prompt, scorer.n_batch):
                piece = prompt[start:start + scorer.n_batch]
                scorer._decode(piece, start, [start + i == n_prompt - 1 for i in range(len(piece))])
            t1 = time.perf_counter()
            tok = int(np.argmax(scorer._outputs(1)[0]))
            for i in range(n_gen):
                scorer._decode([tok], n_prompt + i, [True])
                tok = int(np.argmax(scorer._outputs(1)[0]))
            t2 = time.perf_counter()
            pp.append(n_prompt / (t1 - t0))
            tg.append(n_gen / (t2 - t1))
    finally:
        scorer.close()
    return SpeedResult(statistics.median(pp[1:]), statistics.median(tg[1:]), n_prompt, n_gen, reps, threads)
