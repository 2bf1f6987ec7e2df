"""Perplexity and KL divergence over a corpus, chunked exactly like llama.cpp's llama-perplexity.

The corpus is tokenized once (with BOS) and cut into ``ctx``-token chunks; each chunk starts with
BOS in place of its first token and is evaluated from an empty context; only the second half is
scored (positions ctx/2 .. ctx-2 predict the next token), so every scored token has at least
ctx/2 tokens of history. Logits arrive in ``n_batch`` pieces (bounded memory).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from slmnode.engine.scoring import LogitScorer
from slmnode.errors import ConfigError, ModelFormatError
from slmnode.lab.metrics import KlStats, NllStats, kl_divergence, token_nll, top1_agreement

Progress = Callable[[int], None]  # called with the number of chunks just finished (1)


@dataclass(frozen=True)
class ChunkPlan:
    tokens: list[int]
    ctx: int
    n_chunks: int
    bos: int

    def chunk(self, i: int) -> list[int]:
        toks = self.tokens[i * self.ctx:(i + 1) * self.ctx]
        toks[0] = self.bos
        return toks

    @property
    def first(self) -> int:
        return self.ctx // 2

    @property
    def scored_tokens(self) -> int:
        return self.n_chunks * (self.ctx - 1 - self.first)


def plan_chunks(tokens: Sequence[int], ctx: int, bos: int, max_chunks: int | None = None) -> ChunkPlan:
    """Cut ``tokens`` into whole ``ctx`` chunks (llama-perplexity drops the remainder)."""
    if ctx < 8:
        raise ConfigError(f"context {ctx} is too small to score; use --ctx 128 or more", param="ctx")
    n = len(tokens) // ctx
    if max_chunks is not None:
        n = min(n, max_chunks)
    if n < 1:
        raise ConfigError(f"the corpus has {len(tokens)} tokens, fewer than one chunk of {ctx}; "
                          "use a longer --corpus or a smaller --ctx", param="corpus")
    return ChunkPlan(list(tokens), ctx, n, bos)


def _targets(plan: ChunkPlan, i: int, i0: int, k: int) -> np.ndarray:
    base = i * plan.ctx + i0 + 1
    return np.asarray(plan.tokens[base:base + k], dtype=np.int64)


def perplexity(scorer: LogitScorer, plan: ChunkPlan, progress: Progress | None = None) -> NllStats:
    """Perplexity of one model over ``plan``."""
    stats = NllStats()
    for i in range(plan.n_chunks):
        for i0, logits in scorer.chunk_logits(plan.chunk(i), plan.first, plan.ctx - 1):
            stats.add(token_nll(logits, _targets(plan, i, i0, len(logits))))
        if progress:
            progress(1)
    return stats


def compare_to_reference(
    ref: LogitScorer, model: LogitScorer, plan: ChunkPlan, progress: Progress | None = None,
) -> tuple[NllStats, NllStats, KlStats]:
    """Evaluate both in lockstep: (reference NLL, model NLL, KL(ref || model) and top-1 agreement)."""
    if ref.n_vocab != model.n_vocab:
        raise ModelFormatError(f"vocabularies differ ({ref.n_vocab} vs {model.n_vocab}): "
                               "compare quantizations of the same model only")
    ref_nll, nll, kl = NllStats(), NllStats(), KlStats()
    for i in range(plan.n_chunks):
        chunk = plan.chunk(i)
        pieces = zip(ref.chunk_logits(chunk, plan.first, plan.ctx - 1),
                     model.chunk_logits(chunk, plan.first, plan.ctx - 1), strict=True)
        for (i0, ref_logits), (_, logits) in pieces:
            targets = _targets(plan, i, i0, len(logits))
            ref_nll.add(token_nll(ref_logits, targets))
            nll.add(token_nll(logits, targets))
            kl.add(kl_divergence(ref_logits, logits), top1_agreement(ref_logits, logits))
        if progress:
            progress(1)
    return ref_nll, nll, kl

