"""The planner's side of ``slmnode pull``: the default quant for an alias and the RAM check before a download.

:func:`slmnode.catalog.pull.pull` never imports the planner (the catalog sits above it); it takes the
quant pick and the RAM check as callables. This module builds them: RAM the model may use (this machine's
MemAvailable and free swap, or a device profile), the planner's estimate for the file, and the verdict of
:func:`slmnode.planner.fit.fits` — the rule ``plan``, ``doctor`` and ``serve`` use too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from slmnode.catalog.aliases import Alias
from slmnode.catalog.families import BY_KEY
from slmnode.catalog.pull import RamFit, RemoteFile, fmt_bytes
from slmnode.catalog.quants import QUANTS, get_quant
from slmnode.hardware.probe import probe as probe_hardware
from slmnode.planner.fit import FitVerdict, fits, machine_repack_types, need_from_size
from slmnode.planner.memory import estimate_ram
from slmnode.planner.model_facts import ModelFacts, facts_from_family
from slmnode.planner.plan import GOALS, plan_row, usable_ram
from slmnode.planner.profiles import DeviceProfile, GiB, get_profile, load_local_profile

PLANNER_QUANTS = ("Q4_K_M", "Q5_K_M", "Q8_0")  # what the planner's recommendation compares
PROFILE_SWAP_BYTES = 2 * GiB  # the planner's swap assumption for a device profile


@dataclasses.dataclass(frozen=True)
class MemorySide:
    """RAM the model may use: this machine (MemAvailable + free swap) or a device profile."""

    available: int | None
    swap: int
    where: str
    repack: tuple[str, ...]
    profile: DeviceProfile | None  # for the quant pick: a named device, or this machine once calibrated
    available_for_planner: int | None  # None: the planner uses the profile's RAM minus its reserve

    @classmethod
    def for_device(cls, device: str | None) -> MemorySide:
        if device:
            profile = get_profile(device)
            return cls(usable_ram(profile), PROFILE_SWAP_BYTES,
                       f"device {profile.name} ({fmt_bytes(profile.ram_bytes)} - 1 GiB reserve)",
                       profile.repack_types, profile, None)
        hw = probe_hardware("/")
        avail = hw.memory.available_bytes
        return cls(avail, hw.memory.swap_free_bytes or 0, "this machine (MemAvailable)",
                   machine_repack_types(hw.cpu.arch, hw.cpu.flags), load_local_profile(), avail)

    def verdict(self, required: int) -> FitVerdict:
        return fits(required, self.available, swap_bytes=self.swap)


def remote_facts(remote: RemoteFile) -> ModelFacts | None:
    """The planner's facts for a file not yet downloaded: its catalog family, with the hub's exact size."""
    family = BY_KEY.get(remote.family or "")
    quant = (remote.quant or "").upper()
    if family is None or quant not in QUANTS:
        return None
    facts = facts_from_family(family, get_quant(quant))
    return dataclasses.replace(facts, weight_bytes=remote.size_bytes)


def ram_fit(facts: ModelFacts | None, size_bytes: int, mem: MemorySide, ctx: int, kv_type: str) -> RamFit:
    """The RAM check's verdict for a model of ``size_bytes`` (``facts`` None: architecture unknown)."""
    if facts is None:
        required = need_from_size(size_bytes)
        v = mem.verdict(required)
        return RamFit(required, mem.available, v.verdict, ctx, mem.where,
                      "unknown architecture: file + 20% + 128 MiB", {"file": size_bytes},
                      margin_bytes=v.margin_bytes)
    est = estimate_ram(facts, ctx, kv_type=kv_type, repack_types=mem.repack)
    breakdown = {"weights": est.weights, "kv_cache": est.kv_cache, "compute": est.compute, "runtime": est.runtime}
    if est.repacked:
        breakdown["repacked"] = est.repacked
    v = mem.verdict(est.total)
    return RamFit(est.total, mem.available, v.verdict, ctx, mem.where,
                  f"planner estimate for {facts.name}, kv {kv_type}", breakdown, margin_bytes=v.margin_bytes)


def make_ram_check(mem: MemorySide, ctx: int, kv_type: str) -> Callable[[RemoteFile], RamFit]:
    def check(remote: RemoteFile) -> RamFit:
        return ram_fit(remote_facts(remote), remote.size_bytes, mem, ctx, kv_type)

    return check


def make_quant_pick(mem: MemorySide, ctx: int, kv_type: str) -> Callable[[Alias], tuple[str, str] | None]:
    """The planner's quant for an alias on this device: the best of Q4_K_M/Q5_K_M/Q8_0 that fits in
    RAM and meets the chat floor (generation and prompt tok/s), else the fastest that fits."""

    def pick(alias: Alias) -> tuple[str, str] | None:
        family = BY_KEY.get(alias.family)
        if mem.profile is None or family is None:
            return None
        min_gen, min_pp, _ = GOALS["chat"]
        rows = [plan_row(facts_from_family(family, get_quant(q)), mem.profile, ctx=ctx, kv_type=kv_type,
                         available_bytes=mem.available_for_planner)
                for q in PLANNER_QUANTS if q in alias.quants]
        fitting = [r for r in rows if r.fits == "yes"]
        if not fitting:
            return None
        good = [r for r in fitting if r.gen_tps >= min_gen and r.prompt_tps >= min_pp]
        best = (max(good, key=lambda r: get_quant(r.quant).file_bpw) if good
                else max(fitting, key=lambda r: r.gen_tps))
        return best.quant, (f"planner for {mem.profile.name}: {best.gen_tps:.1f} tok/s predicted, "
                            f"{fmt_bytes(best.ram_bytes)} at ctx {ctx}")

    return pick
