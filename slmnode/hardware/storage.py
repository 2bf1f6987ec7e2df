"""The disk that holds the models: free space, device kind, mount options."""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slmnode.hardware.memory import parse_mounts
from slmnode.hardware.root import SysRoot


@dataclass(frozen=True)
class StorageFacts:
    path: str
    mount_point: str | None
    device: str | None
    fs_type: str | None
    options: tuple[str, ...]
    kind: str  # sd-card | nvme | ssd | hdd | virtual | unknown
    free_bytes: int | None
    total_bytes: int | None

    @property
    def noatime(self) -> bool:
        return "noatime" in self.options

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "noatime": self.noatime}


def block_name(device: str) -> str | None:
    """``/dev/mmcblk0p2`` -> ``mmcblk0``; ``/dev/sda1`` -> ``sda``; ``/dev/nvme0n1p2`` -> ``nvme0n1``."""
    name = device.rsplit("/", 1)[-1]
    for pat in (r"^(mmcblk\d+)", r"^(nvme\d+n\d+)", r"^([sv]d[a-z]+)", r"^(xvd[a-z]+)"):
        m = re.match(pat, name)
        if m:
            return m.group(1)
    return None


def device_kind(root: SysRoot, device: str | None) -> str:
    if not device:
        return "unknown"
    blk = block_name(device)
    if blk is None:
        return "virtual" if not device.startswith("/dev/") else "unknown"
    if blk.startswith("mmcblk"):
        return "sd-card"  # SD card or eMMC: both wear and both are slow for swap
    if blk.startswith("nvme"):
        return "nvme"
    if blk.startswith(("vd", "xvd")):
        return "virtual"  # a hypervisor's disk: its "rotational" flag says nothing
    rot = root.read_int(f"sys/block/{blk}/queue/rotational")
    if rot == 1:
        return "hdd"
    if rot == 0:
        return "ssd"
    return "unknown"


def storage_facts(root: SysRoot, path: str | Path) -> StorageFacts:
    """Facts about the filesystem holding ``path`` (the model store)."""
    p = str(path)
    best = None
    for point, dev, fs, opts in parse_mounts(root.read("proc/mounts") or ""):
        prefix = point.rstrip("/") + "/"
        if p == point or p.startswith(prefix) or point == "/":
            if best is None or len(point) > len(best[0]):
                best = (point, dev, fs, opts)
    free = total = None
    if root.live:
        probe = Path(p)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        usage = shutil.disk_usage(probe)
        free, total = usage.free, usage.total
    if best is None:
        return StorageFacts(p, None, None, None, (), "unknown", free, total)
    point, dev, fs, opts = best
    kind = device_kind(root, dev)
    if kind == "unknown" and fs in ("overlay", "tmpfs", "9p", "virtiofs", "fuse"):
        kind = "virtual"
    return StorageFacts(p, point, dev, fs, opts, kind, free, total)
