"""Does a model fit in RAM: the one rule ``slmnode plan``, ``pull``, ``doctor`` and ``serve`` share.

Each caller estimates what the model needs with :func:`slmnode.planner.memory.estimate_ram` (weights,
repacked weights, KV cache, compute buffers, runtime), takes the weight types this CPU repacks from
:func:`machine_repack_types` (or a device profile), and asks :func:`fits`:

* ``yes``: ``need + FIT_MARGIN_BYTES <= available``;
* ``swap``: it fits only when free swap is counted too (it would page every token: far below 1 tok/s);
* ``no``: not even with swap;
* ``unknown``: the available RAM cannot be known (a capture without MemAvailable): callers do not block.

So the planner's "fits", the pull's RAM check, the doctor's ``ram`` check and the supervisor's
refusal to load give the same answer for the same model and the same RAM figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from slmnode.planner.calibrate import repack_types_for

MiB = 1 << 20
# Headroom over the estimate: the HTTP process's own growth while it serves, and the estimate's error
# (measured within ~10% of RSS for the catalog's small models, i.e. tens of MiB).
FIT_MARGIN_BYTES = 256 * MiB

Verdict = Literal["yes", "swap", "no", "unknown"]


@dataclass(frozen=True)
class FitVerdict:
    verdict: Verdict
    need_bytes: int  # the estimate, without the margin
    available_bytes: int | None
    swap_bytes: int = 0
    margin_bytes: int = FIT_MARGIN_BYTES

    @property
    def fits(self) -> bool:
        """In RAM without swap, with the margin to spare."""
        return self.verdict == "yes"

    @property
    def refused(self) -> bool:
        """A load or download should not go ahead (``unknown`` is not a refusal)."""
        return self.verdict in ("swap", "no")

    def describe(self) -> str:
        avail = "unknown" if self.available_bytes is None else f"{self.available_bytes / MiB:.0f} MiB"
        return (f"needs {self.need_bytes / MiB:.0f} MiB + {self.margin_bytes / MiB:.0f} MiB margin, "
                f"{avail} available")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fits": self.fits}


def fits(need_bytes: int, available_bytes: int | None, *, swap_bytes: int = 0,
         margin_bytes: int = FIT_MARGIN_BYTES) -> FitVerdict:
    """The verdict for a model needing ``need_bytes`` with ``available_bytes`` of RAM (and free swap)."""
    if available_bytes is None:
        verdict: Verdict = "unknown"
    elif need_bytes + margin_bytes <= available_bytes:
        verdict = "yes"
    elif need_bytes + margin_bytes <= available_bytes + max(0, swap_bytes):
        verdict = "swap"
    else:
        verdict = "no"
    return FitVerdict(verdict, need_bytes, available_bytes, max(0, swap_bytes), margin_bytes)


def machine_repack_types(arch: str | None, cpu_flags: Iterable[str]) -> tuple[str, ...]:
    """Weight types llama.cpp repacks on this CPU, for the RAM estimate.

    Decided from the CPU alone (not the installed build's REPACK flag): the HTTP process never imports
    ``llama_cpp``, and the CLI must reach the same verdict as the server. A build without repack is
    over-estimated, never under-estimated.
    """
    return repack_types_for(arch or "", set(cpu_flags), {})


def need_from_size(size_bytes: int) -> int:
    """RAM of a model the planner cannot read (unknown architecture): its file + 20% + 128 MiB."""
    return int(size_bytes * 1.2) + 128 * MiB
