"""Numpy math over logits: log-softmax, NLL of the observed token, KL divergence, top-1 agreement.

KL divergence is KL(P_ref || P_model) = sum_v p_ref(v) (log p_ref(v) - log p_model(v)), per
position, in nats, the quantity llama-perplexity's ``--kl-divergence`` reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax (float32 rows of a (k, vocab) array)."""
    m = logits.max(axis=1, keepdims=True)
    shifted = logits - m
    lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True, dtype=np.float64)).astype(shifted.dtype)
    return shifted - lse


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log p(target) for each row: shape (k,), float64."""
    m = logits.max(axis=1)
    lse = m.astype(np.float64) + np.log(np.exp(logits - m[:, None]).sum(axis=1, dtype=np.float64))
    return lse - logits[np.arange(len(targets)), targets].astype(np.float64)


def kl_divergence(ref_logits: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """KL(ref || model) per row, nats, float64, clipped at 0 (rounding)."""
    lp, lq = log_softmax(ref_logits), log_softmax(logits)
    kl = (np.exp(lp) * (lp - lq)).sum(axis=1, dtype=np.float64)
    return np.maximum(kl, 0.0)


def top1_agreement(ref_logits: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """True where both pick the same most likely token."""
    return np.argmax(ref_logits, axis=1) == np.argmax(logits, axis=1)


@dataclass
class NllStats:
    """Running sum of NLL; perplexity = exp(mean NLL) with llama-perplexity's ± estimate."""

    nll: list[float] = field(default_factory=list)

    def add(self, values: np.ndarray) -> None:
        self.nll.extend(float(v) for v in values)

    @property
    def count(self) -> int:
        return len(self.nll)

    @property
    def perplexity(self) -> float:
        return math.exp(float(np.mean(self.nll))) if self.nll else math.nan

    @property
    def perplexity_error(self) -> float:
        if len(self.nll) < 2:
            return math.nan
        arr = np.asarray(self.nll)
        return self.perplexity * float(arr.std(ddof=1)) / math.sqrt(len(arr))


@dataclass
class KlStats:
    """KL divergence per position and top-1 agreement, summarised."""

    kl: list[float] = field(default_factory=list)
    same_top1: int = 0

    def add(self, kl: np.ndarray, agree: np.ndarray) -> None:
        self.kl.extend(float(v) for v in kl)
        self.same_top1 += int(agree.sum())

    @property
    def count(self) -> int:
        return len(self.kl)

    def summary(self) -> dict[str, float]:
        if not self.kl:
            return {"kld_mean": math.nan, "kld_median": math.nan, "kld_p99": math.nan, "kld_max": math.nan,
                    "top1_agreement": math.nan}
        arr = np.asarray(self.kl)
        return {"kld_mean": float(arr.mean()), "kld_median": float(np.median(arr)),
                "kld_p99": float(np.percentile(arr, 99)), "kld_max": float(arr.max()),
                "top1_agreement": self.same_top1 / len(arr)}
