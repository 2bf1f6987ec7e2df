"""``plan``, ``pull``, ``doctor`` and ``serve`` (the supervisor's load check) agree whether a model fits.

One model (the embedded GGUF), one context, one CPU (x86 with AVX2: Q4_K weights are repacked) and a
table of available-RAM figures around the edge ``need + FIT_MARGIN_BYTES``. Each caller is driven through
its own code path (planner row, pull RAM check, doctor context + check, supervisor memory check reading a
/proc capture); all four must report the same need and the same verdict.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from slmnode.catalog.pull import check_ram as pull_check_ram
from slmnode.config import load_settings
from slmnode.doctor.checks import check_ram as doctor_check_ram
from slmnode.doctor.context import doctor_context
from slmnode.errors import NotEnoughMemory
from slmnode.hardware.probe import probe
from slmnode.hardware.root import SysRoot
from slmnode.planner.fit import FIT_MARGIN_BYTES, fits, machine_repack_types
from slmnode.planner.model_facts import facts_from_gguf
from slmnode.planner.plan import plan_row
from slmnode.planner.profiles import get_profile
from slmnode.planner.pull_check import MemorySide, ram_fit
from slmnode.supervisor.memory import load_verdict, memory_check

MiB, KiB = 1 << 20, 1 << 10
CTX = 2048
CPUINFO = "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu lm sse3 avx avx2 fma f16c\n\n"
# available RAM = need + offset; the old rules disagreed across 0..512 MiB (planner and pull: no margin,
# the supervisor: 256 MiB without repacked weights, doctor: 512 MiB)
OFFSETS = [-64 * MiB, 0, 128 * MiB, FIT_MARGIN_BYTES - KiB, FIT_MARGIN_BYTES, FIT_MARGIN_BYTES + KiB,
           384 * MiB, 512 * MiB, 4096 * MiB]


def _capture(root: Path, available: int) -> SysRoot:
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc/cpuinfo").write_text(CPUINFO)
    (root / "proc/meminfo").write_text(f"MemTotal: {64 << 20} kB\nMemFree: {available // KiB} kB\n"
                                       f"MemAvailable: {available // KiB} kB\n")
    return SysRoot(root)


def verdicts(path: Path, available: int, root: Path) -> dict[str, tuple[int, bool]]:
    """(need, fits) from each of the four callers."""
    sysroot = _capture(root, available)
    hw = probe(root)
    assert hw.memory.available_bytes == available
    repack = machine_repack_types(hw.cpu.arch, hw.cpu.flags)
    facts = facts_from_gguf(path)
    out: dict[str, tuple[int, bool]] = {}

    profile = dataclasses.replace(get_profile("n100-16gb"), repack_types=repack)
    row = plan_row(facts, profile, ctx=CTX, available_bytes=available, swap_bytes=0)
    out["plan"] = (row.ram_bytes, row.fits == "yes")

    mem = MemorySide(available, 0, "test", repack, None, available)
    fit = ram_fit(facts, path.stat().st_size, mem, CTX, "f16")
    check = pull_check_ram(fit, "m")
    assert check is not None
    out["pull"] = (fit.required_bytes, check.ok)

    ctx = doctor_context(load_settings({"model": str(path), "ctx": CTX}), hw)
    out["doctor"] = (ctx.need_bytes, doctor_check_ram(hw, ctx).status == "pass")

    size = path.stat().st_size
    verdict, _ = load_verdict(str(path), size, CTX, "f16", root=sysroot)
    try:
        memory_check(str(path), size, CTX, "f16", root=sysroot)()
        loads = True
    except NotEnoughMemory:
        loads = False
    out["serve"] = (verdict.need_bytes, loads)
    return out


@pytest.mark.parametrize("offset", OFFSETS, ids=[f"need{o // KiB:+d}KiB" for o in OFFSETS])
def test_plan_pull_doctor_and_serve_agree_around_the_margin(gemma_path: Path, tmp_path: Path,
                                                            offset: int) -> None:
    facts = facts_from_gguf(gemma_path)
    probe_root = _capture(tmp_path / "probe", 8 << 30).root
    hw = probe(probe_root)
    repack = machine_repack_types(hw.cpu.arch, hw.cpu.flags)
    assert repack  # AVX2: the rule counts repacked weights, so every caller must too
    need = plan_row(facts, dataclasses.replace(get_profile("n100-16gb"), repack_types=repack), ctx=CTX).ram_bytes
    available = (need + offset) // KiB * KiB  # /proc/meminfo counts kB
    expected = need + FIT_MARGIN_BYTES <= available

    got = verdicts(gemma_path, available, tmp_path / "box")

    assert {name: n for name, (n, _) in got.items()} == dict.fromkeys(got, need)
    assert {name: ok for name, (_, ok) in got.items()} == dict.fromkeys(got, expected)


def test_fits_edges_and_unknown() -> None:
    need = 1000 * MiB
    assert fits(need, need + FIT_MARGIN_BYTES).verdict == "yes"
    assert fits(need, need + FIT_MARGIN_BYTES - 1).verdict == "no"
    assert fits(need, need + FIT_MARGIN_BYTES - 1, swap_bytes=1).verdict == "swap"
    unknown = fits(need, None)
    assert unknown.verdict == "unknown" and not unknown.fits and not unknown.refused
