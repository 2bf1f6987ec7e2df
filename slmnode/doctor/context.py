"""What the doctor checks the box *for*: the model as ``slmnode serve`` would run it.

The RAM need is the one ``serve``'s load check computes (same estimate, same KV cells, same repacked
weight types), so ``doctor`` passes exactly when ``serve`` would load the model.
"""

from __future__ import annotations

from slmnode.config import Settings
from slmnode.doctor.checks import DoctorContext
from slmnode.hardware.probe import HardwareFacts
from slmnode.planner.fit import machine_repack_types
from slmnode.planner.memory import estimate_ram, kv_cells
from slmnode.planner.model_facts import ModelFacts
from slmnode.planner.target import facts_for


def need_bytes(facts: ModelFacts, hw: HardwareFacts, *, ctx: int, kv_type: str = "f16", parallel: int = 1,
               kv_layout: str = "unified") -> int:
    """RAM ``serve`` plans for this model on this box (see :mod:`slmnode.planner.fit`)."""
    cells = kv_cells(facts, ctx, parallel, kv_layout=kv_layout, kv_type=kv_type,
                     total_ram_bytes=hw.memory.total_bytes)
    repack = machine_repack_types(hw.cpu.arch, hw.cpu.flags)
    return estimate_ram(facts, cells, kv_type=kv_type, repack_types=repack).total


def doctor_context(settings: Settings, hw: HardwareFacts) -> DoctorContext:
    facts, _ = facts_for(settings.model)
    need = need_bytes(facts, hw, ctx=settings.ctx, kv_type=settings.kv_type, parallel=settings.parallel,
                      kv_layout=settings.kv_layout)
    return DoctorContext(model=f"{facts.name} {facts.quant} @ ctx {settings.ctx}", need_bytes=need)
