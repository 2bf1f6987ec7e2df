"""Refuse to load a model that would not fit the available RAM, with the numbers, before the OOM killer decides.

The verdict is :func:`slmnode.planner.fit.fits`, the rule ``slmnode plan``, ``pull`` and ``doctor`` use too.
"""

from __future__ import annotations

from collections.abc import Callable

from slmnode.errors import ModelFormatError, NotEnoughMemory
from slmnode.hardware.cpu import cpu_facts
from slmnode.hardware.memory import memory_facts
from slmnode.hardware.root import SysRoot
from slmnode.planner.fit import FIT_MARGIN_BYTES, FitVerdict, fits, machine_repack_types, need_from_size
from slmnode.planner.memory import estimate_ram
from slmnode.planner.model_facts import facts_from_gguf

MiB = 2**20


def ram_need(path: str, size_bytes: int, kv_cells: int, kv_type: str,
             repack_types: tuple[str, ...] = ()) -> tuple[int, str]:
    """Bytes the model needs with ``kv_cells`` of KV cache and a one-line breakdown."""
    try:
        facts = facts_from_gguf(path)
    except (OSError, ModelFormatError, ValueError):  # unreadable or not a GGUF the planner knows
        return need_from_size(size_bytes), f"file {size_bytes / MiB:.0f} MiB + 20% + 128 MiB"
    est = estimate_ram(facts, kv_cells, kv_type=kv_type, repack_types=repack_types)
    return est.total, (f"weights {est.weights / MiB:.0f} MiB + KV cache {est.kv_cache / MiB:.0f} MiB + "
                       f"buffers {(est.compute + est.runtime + est.repacked) / MiB:.0f} MiB")


def load_verdict(path: str, size_bytes: int, kv_cells: int, kv_type: str, *, root: SysRoot,
                 margin_bytes: int = FIT_MARGIN_BYTES) -> tuple[FitVerdict, str]:
    """The shared fit rule for this machine's MemAvailable and CPU (repacked weight types)."""
    cpu = cpu_facts(root)
    need, how = ram_need(path, size_bytes, kv_cells, kv_type, machine_repack_types(cpu.arch, cpu.flags))
    return fits(need, memory_facts(root).available_bytes, margin_bytes=margin_bytes), how


def memory_check(path: str, size_bytes: int, kv_cells: int, kv_type: str, *, root: SysRoot,
                 margin_bytes: int = FIT_MARGIN_BYTES, name: str = "the model") -> Callable[[], None]:
    def check() -> None:
        verdict, how = load_verdict(path, size_bytes, kv_cells, kv_type, root=root, margin_bytes=margin_bytes)
        if verdict.available_bytes is None or not verdict.refused:
            return  # fits, or not knowable here: don't block
        raise NotEnoughMemory(
            f"not loading {name}: it needs about {verdict.need_bytes / MiB:.0f} MiB at context {kv_cells} "
            f"({how}) plus a {margin_bytes / MiB:.0f} MiB margin, but only "
            f"{verdict.available_bytes / MiB:.0f} MiB is available. Free memory, pick a smaller quant, lower "
            "--ctx or use --kv-type q8_0 (see `slmnode plan`)")
    return check
