"""One-line verdicts for compared quantizations, from measured quality, size and speed.

Quality bands by mean KL divergence against the reference (nats/token): < 0.01 near-lossless,
< 0.05 small loss, < 0.2 clear loss, else heavy loss. A row is "dominated" when another is no
larger, no worse in KLD, and at least as fast (within 5%, speed is noisy) in generation.
"""

from __future__ import annotations

from typing import Any

BANDS = ((0.01, "near-lossless"), (0.05, "small loss"), (0.2, "clear loss"))
SPEED_TOLERANCE = 0.95


def quality_band(kld_mean: float) -> str:
    for limit, name in BANDS:
        if kld_mean < limit:
            return name
    return "heavy loss"


def _dominates(b: Any, a: Any) -> bool:
    if b is a or b.is_reference:
        return False
    no_worse = b.size_bytes <= a.size_bytes and b.kld_mean <= a.kld_mean
    if a.generation_tps is not None and b.generation_tps is not None:
        no_worse = no_worse and b.generation_tps >= SPEED_TOLERANCE * a.generation_tps
    strictly = b.size_bytes < a.size_bytes or b.kld_mean < a.kld_mean
    return no_worse and strictly


def add_verdicts(rows: list[Any]) -> str:
    """Fill ``row.verdict`` for each row (QuantRow-like); return one line of advice."""
    ref = next((r for r in rows if r.is_reference), None)
    cands = [r for r in rows if not r.is_reference]
    for r in rows:
        if r.is_reference:
            r.verdict = "reference (quality is measured against it)"
            continue
        parts = [f"{quality_band(r.kld_mean)}: KLD {r.kld_mean:.3f}, top-1 {r.top1_agreement:.1%}"]
        if ref is not None:
            parts.append(f"ppl {100 * (r.perplexity / ref.perplexity - 1):+.1f}%")
            parts.append(f"{r.size_bytes / ref.size_bytes:.2f}x size")
            if r.generation_tps and ref.generation_tps:
                parts.append(f"{r.generation_tps / ref.generation_tps:.2f}x gen speed")
        dom = next((b for b in cands if _dominates(b, r)), None)
        if dom is not None:
            parts.append(f"skip: {dom.label} is as small, as good and as fast")
        r.verdict = "; ".join(parts)
    good = [r for r in cands if r.kld_mean < BANDS[1][0]]
    if not good:
        return "no candidate stays within small loss (mean KLD < 0.05) of the reference"
    pick = min(good, key=lambda r: r.size_bytes)
    timed = [r for r in cands if r.generation_tps]
    fastest = max(timed, key=lambda r: r.generation_tps) if timed else None
    advice = (f"pick {pick.label}: the smallest within small loss (KLD {pick.kld_mean:.3f}, "
              f"{pick.size_bytes / 1e6:.0f} MB)")
    if fastest is not None and fastest is not pick:
        advice += (f"; {fastest.label} generates fastest ({fastest.generation_tps:.1f} tok/s) "
                   f"at {quality_band(fastest.kld_mean)} (KLD {fastest.kld_mean:.3f})")
    return advice
