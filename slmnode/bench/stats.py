"""Statistics of repeated measurements: median, min, max over the repeats, and ratios of medians."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Median, min and max of ``n`` samples (the samples kept for the history and plots)."""

    median: float
    min: float
    max: float
    n: int

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were (0 when a single sample)."""
        return (self.max - self.min) / self.median if self.median else 0.0


def summarize(values: Sequence[float]) -> Summary:
    """Summary of ``values``; raises ValueError when there are none."""
    if not values:
        raise ValueError("no samples to summarize")
    return Summary(statistics.median(values), min(values), max(values), len(values))


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when the denominator is 0 (nothing to compare)."""
    return numerator / denominator if denominator else None


def speedup(a: float, b: float, *, higher_is_better: bool) -> float | None:
    """How many times better ``a`` is than ``b`` (> 1: ``a`` wins), whatever the metric's direction."""
    return ratio(a, b) if higher_is_better else ratio(b, a)
