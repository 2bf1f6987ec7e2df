"""Refuse to load a model that would not fit the available RAM, with the numbers, before the OOM killer decides."""

from __future__ import annotations

from collections.abc import Callable

from slmnode.errors import NotEnoughMemory
from slmnode.hardware.memory import memory_facts
from slmnode.hardware.root import SysRoot

MiB = 2**20


def ram_need(path: str, size_bytes: int, ctx: int, kv_type: str) -> tuple[int, str]:
    """Bytes the model needs at ``ctx`` and a one-line breakdown (planner estimate when available)."""
    try:
        from slmnode.planner.memory import estimate_ram
        from slmnode.planner.model_facts import facts_from_gguf

        est = estimate_ram(facts_from_gguf(path), ctx, kv_type=kv_type)
        return est.total, (f"weights {est.weights / MiB:.0f} MiB + KV cache {est.kv_cache / MiB:.0f} MiB + "
                           f"buffers {(est.compute + est.runtime + est.repacked) / MiB:.0f} MiB")
    except Exception:  # the planner cannot read this model: fall back to size + a generous margin
        return int(size_bytes * 1.2) + 128 * MiB, f"file {size_bytes / MiB:.0f} MiB + 20% + 128 MiB"


def memory_check(path: str, size_bytes: int, ctx: int, kv_type: str, *, root: SysRoot,
                 margin_bytes: int = 256 * MiB, name: str = "the model") -> Callable[[], None]:
    def check() -> None:
        avail = memory_facts(root).available_bytes
        if avail is None:
            return  # not knowable here: don't block
        need, how = ram_need(path, size_bytes, ctx, kv_type)
        if need + margin_bytes > avail:
            raise NotEnoughMemory(
                f"not loading {name}: it needs about {need / MiB:.0f} MiB at context {ctx} ({how}) plus a "
                f"{margin_bytes / MiB:.0f} MiB margin, but only {avail / MiB:.0f} MiB is available. Free memory, "
                "pick a smaller quant, lower --ctx or use --kv-type q8_0 (see `slmnode plan`)")
    return check
