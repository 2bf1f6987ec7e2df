"""RAM and swap: ``/proc/meminfo`` and ``/proc/swaps`` (zram vs file vs partition, SD card)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from slmnode.hardware.root import SysRoot


@dataclass(frozen=True)
class SwapDevice:
    name: str
    kind: str  # zram | file | partition
    size_bytes: int
    used_bytes: int
    priority: int
    on_sd_card: bool | None  # None when it cannot be told (a file on an unknown mount)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MemoryFacts:
    total_bytes: int | None
    available_bytes: int | None
    swap_total_bytes: int | None
    swap_free_bytes: int | None
    swaps: tuple[SwapDevice, ...]
    swaps_known: bool = True  # False when /proc/swaps could not be read (e.g. absent in a capture)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["swaps"] = [s.to_dict() for s in self.swaps]
        return out

    @property
    def zram_active(self) -> bool:
        return any(s.kind == "zram" for s in self.swaps)


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` -> bytes by key (``MemTotal``, ``MemAvailable``, ...)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^(\w[\w()]*):\s+(\d+)(?:\s+kB)?\s*$", line)
        if m:
            out[m.group(1)] = int(m.group(2)) * (1024 if "kB" in line else 1)
    return out


def _is_sd_device(dev: str) -> bool:
    return "mmcblk" in dev


def parse_swaps(text: str, mounts: list[tuple[str, str]] | None = None) -> list[SwapDevice]:
    """``/proc/swaps`` (or ``swapon -s``) rows. ``mounts`` = (mount point, device) pairs,
    used to tell whether a swap *file* lives on an SD card."""
    out: list[SwapDevice] = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 5 or not parts[2].isdigit():
            continue
        name, typ, size, used, prio = parts[0], parts[1], int(parts[2]), int(parts[3]), int(parts[4])
        on_sd: bool | None
        if "zram" in name:
            kind, on_sd = "zram", False
        elif typ == "file":
            kind = "file"
            dev = _device_of(name, mounts) if mounts else None
            on_sd = _is_sd_device(dev) if dev else None
        else:
            kind, on_sd = "partition", _is_sd_device(name)
        out.append(SwapDevice(name, kind, size * 1024, used * 1024, prio, on_sd))
    return out


def parse_mounts(text: str) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """``/proc/mounts`` -> (mount point, device, fs type, options)."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            point = parts[1].replace("\\040", " ")
            rows.append((point, parts[0], parts[2], tuple(parts[3].split(","))))
    return rows


def _device_of(path: str, mounts: list[tuple[str, str]]) -> str | None:
    best: tuple[int, str] | None = None
    for point, dev in mounts:
        prefix = point.rstrip("/") + "/"
        if (path == point or path.startswith(prefix) or point == "/") and (
            best is None or len(point) > best[0]
        ):
            best = (len(point), dev)
    return best[1] if best else None


def memory_facts(root: SysRoot) -> MemoryFacts:
    info = parse_meminfo(root.read("proc/meminfo") or "")
    total, avail = info.get("MemTotal"), info.get("MemAvailable")
    if avail is None and total is not None and "MemFree" in info:  # kernels before 3.14
        avail = info["MemFree"] + info.get("Buffers", 0) + info.get("Cached", 0)
    if total is None and root.live:
        vm = psutil.virtual_memory()
        total, avail = vm.total, vm.available
    mounts = [(p, d) for p, d, _, _ in parse_mounts(root.read("proc/mounts") or "")]
    swaps_text = root.read("proc/swaps")
    swaps = parse_swaps(swaps_text or "", mounts)
    return MemoryFacts(total, avail, info.get("SwapTotal"), info.get("SwapFree"), tuple(swaps),
                       swaps_known=swaps_text is not None)
