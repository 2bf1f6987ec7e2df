"""Embeddings in the worker process (imports llama_cpp): a second llama.cpp context on the loaded weights.

:class:`Embedder` creates, on its first request, a context with ``embeddings`` on over the model the batch
engine serves (no second copy of the weights) and embeds several inputs per ``llama_decode`` as separate
sequences of one unified KV cache:

- **A generative model** (its GGUF names no pooling): mean of the final hidden states, pooled here, with the
  inputs fed in chunks of :data:`CHUNK` tokens. Every token is an output of an embeddings context, so llama.cpp
  also runs the LM head over each token; a chunk keeps that buffer small and each decode short.
- **An embedding model** (its GGUF names mean, CLS or last pooling): llama.cpp pools (and applies the model's
  dense layers); a whole input must be in one decode, so an input may have at most ``min(n_ctx, n_batch)``
  tokens, as in llama-server.

Vectors are L2-normalised. Each decode takes a turn of :class:`Turns` with the batch engine's decode steps, so
the two never compete for the cores: while an embedding runs, a generating request waits at most one chunk per
token. An input longer than the context raises :class:`ContextLengthExceeded` unless ``truncate`` cuts it.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import llama_cpp
import numpy as np

from slmnode.engine.model import LoadedModel
from slmnode.errors import ContextLengthExceeded, EngineError, RequestError

CHUNK = 32  # tokens per decode of a generative model's inputs: a decode step of generation waits at most this
MAX_SEQS = 32  # inputs decoded together
_POOLING = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}

Input = str | list[int]


class Turns:
    """A FIFO lock: decodes of the batch engine and of the embedder take turns in the order they asked.

    (``threading.Lock`` may hand the lock straight back to the thread that released it, which would let a
    busy generation loop starve an embedding, or the reverse.)
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = self._serving = 0

    def __enter__(self) -> None:
        with self._cond:
            ticket, self._next = self._next, self._next + 1
            while ticket != self._serving:
                self._cond.wait()

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


@dataclass(frozen=True)
class Embedded:
    index: int
    vector: np.ndarray  # float32, unit length
    tokens: int  # tokens embedded (after truncation)


def _meta(model: Any, key: str) -> str | None:
    buf = ctypes.create_string_buffer(256)
    n = llama_cpp.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    return buf.value.decode("utf-8", "replace") if n >= 0 else None


def model_pooling(model: Any) -> int:
    """The pooling type the GGUF declares (0: none, i.e. a generative model)."""
    arch = _meta(model, "general.architecture") or ""
    value = _meta(model, f"{arch}.pooling_type")
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


class Embedder:
    def __init__(self, lm: LoadedModel, n_threads: Callable[[], int], turns: Turns) -> None:
        self.lm, self.n_threads, self.turns = lm, n_threads, turns
        self.model = lm.model.model
        self.pooling = model_pooling(self.model)
        if self.pooling == 4:
            raise EngineError("this model is a reranker (rank pooling), not an embedding model")
        self.own_pooling = self.pooling == 0  # a generative model: mean pooling, done here
        self.n_embd = int(llama_cpp.llama_model_n_embd_out(self.model))
        # most tokens of one input (the KV cells of the context; whole inputs per decode for llama.cpp's pooling)
        self.max_tokens = lm.n_ctx if self.own_pooling else min(lm.n_ctx, lm.n_batch)
        self.chunk = CHUNK if self.own_pooling else self.max_tokens
        self.ctx: Any = None
        self.batch: Any = None
        self._threads = 0

    @property
    def pooling_name(self) -> str:
        return "mean" if self.own_pooling else _POOLING.get(self.pooling, str(self.pooling))

    def _open(self) -> None:
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = self.max_tokens
        cp.n_batch = cp.n_ubatch = self.chunk
        cp.n_seq_max = MAX_SEQS
        cp.kv_unified = True  # the inputs of one decode share the cells (else each gets n_ctx / n_seq_max)
        cp.embeddings = True
        cp.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_NONE if self.own_pooling else self.pooling
        cp.n_threads = cp.n_threads_batch = self._threads = self.n_threads()
        ctx = llama_cpp.llama_init_from_model(self.model, cp)
        if not ctx:
            raise EngineError("llama.cpp could not create the embeddings context (out of memory?)")
        self.ctx = ctx
        self.batch = llama_cpp.llama_batch_init(self.chunk, 0, 1)

    def close(self) -> None:
        if self.batch is not None:
            llama_cpp.llama_batch_free(self.batch)
        if self.ctx is not None:
            llama_cpp.llama_free(self.ctx)
        self.ctx = self.batch = None

    # -- input -----------------------------------------------------------------------------------------
    def tokens_of(self, inputs: Sequence[Input], truncate: bool) -> list[list[int]]:
        n_vocab, out = self.lm.n_vocab, []
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                toks = self.lm.tokenize(item)
            else:
                toks = list(item)
                if any(not 0 <= t < n_vocab for t in toks):
                    raise RequestError(f"input {i}: token ids must be in [0, {n_vocab})", param="input")
            if not toks:
                raise RequestError(f"input {i} is empty: nothing to embed", param="input")
            if len(toks) > self.max_tokens:
                if not truncate:
                    raise ContextLengthExceeded(
                        f"input {i} has {len(toks)} tokens; this model embeds at most {self.max_tokens} tokens per "
                        "input (the node's --ctx" + ("" if self.own_pooling else " and --batch") + "); shorten it "
                        "(Ollama's /api/embed: truncate=true cuts it)", param="input")
                toks = toks[: self.max_tokens]
            out.append(toks)
        return out

    # -- embedding -------------------------------------------------------------------------------------
    def embed(self, inputs: Sequence[Input], truncate: bool, stop: Callable[[], bool] = lambda: False) -> Iterator[Embedded]:
        """Vectors of ``inputs`` in order; input errors raise before anything is decoded. ``stop()`` true (the
        client went away) ends it before the next decode with :class:`RequestError`."""
        all_tokens = self.tokens_of(inputs, truncate)
        if self.ctx is None:
            self._open()
        start = 0
        while start < len(all_tokens):  # a group: whole inputs that fit the context together
            end, used = start, 0
            while end < len(all_tokens) and end - start < MAX_SEQS and used + len(all_tokens[end]) <= self.max_tokens:
                used += len(all_tokens[end])
                end += 1
            for k, vec in enumerate(self._group(all_tokens[start:end], stop)):
                yield Embedded(start + k, vec, len(all_tokens[start + k]))
            start = end

    def _group(self, seqs: list[list[int]], stop: Callable[[], bool]) -> list[np.ndarray]:
        flat = [(s, p, t) for s, toks in enumerate(seqs) for p, t in enumerate(toks)]
        sums = np.zeros((len(seqs), self.n_embd), dtype=np.float64)
        pooled: list[np.ndarray] = []
        try:
            for i in range(0, len(flat), self.chunk):
                part = flat[i:i + self.chunk]
                if stop():
                    raise RequestError("embedding stopped: the client went away")
                self._decode(part)
                if self.own_pooling:
                    out = np.ctypeslib.as_array(llama_cpp.llama_get_embeddings(self.ctx), shape=(len(part), self.n_embd))
                    np.add.at(sums, np.fromiter((s for s, _, _ in part), dtype=np.intp, count=len(part)), out)
            if self.own_pooling:
                pooled = list(sums / np.array([len(t) for t in seqs], dtype=np.float64)[:, None])
            else:
                for s in range(len(seqs)):
                    ptr = llama_cpp.llama_get_embeddings_seq(self.ctx, s)
                    if not ptr:
                        raise EngineError("llama.cpp returned no pooled embedding")
                    pooled.append(np.ctypeslib.as_array(ptr, shape=(self.n_embd,)).astype(np.float64))
        finally:
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)
        return [normalized(v) for v in pooled]

    def _decode(self, part: list[tuple[int, int, int]]) -> None:
        b = self.batch
        for n, (s, p, t) in enumerate(part):
            b.token[n], b.pos[n], b.n_seq_id[n], b.logits[n] = t, p, 1, True
            b.seq_id[n][0] = s
        b.n_tokens = len(part)
        with self.turns:
            threads = self.n_threads()  # the thermal governor's thread count applies here too
            if threads != self._threads:
                llama_cpp.llama_set_n_threads(self.ctx, threads, threads)
                self._threads = threads
            rc = llama_cpp.llama_decode(self.ctx, b)
        if rc != 0:
            raise EngineError(f"llama_decode failed with code {rc} while embedding")


def normalized(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return (v / norm if norm > 0 else v).astype(np.float32)
