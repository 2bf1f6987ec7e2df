"""``slmnode probe``: every fact about this box the planner and the doctor use, in one object."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmnode.hardware.cpu import CpuFacts, cpu_facts
from slmnode.hardware.memory import MemoryFacts, memory_facts
from slmnode.hardware.root import SysRoot
from slmnode.hardware.storage import StorageFacts, storage_facts
from slmnode.hardware.thermal import ThermalZone, Throttled, thermal_zones, throttled_facts


@dataclass(frozen=True)
class HardwareFacts:
    root: str
    board: str | None
    is_raspberry_pi: bool
    cpu: CpuFacts
    memory: MemoryFacts
    storage: StorageFacts
    thermal: tuple[ThermalZone, ...]
    throttled: Throttled | None
    watchdog: dict[str, str | None]
    llama_build: dict[str, int]  # filled by the caller (engine.build_info); hardware never imports it

    @property
    def max_celsius(self) -> float | None:
        return max((z.celsius for z in self.thermal), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root, "board": self.board, "is_raspberry_pi": self.is_raspberry_pi,
            "cpu": self.cpu.to_dict(), "memory": self.memory.to_dict(),
            "storage": self.storage.to_dict(), "thermal": [z.to_dict() for z in self.thermal],
            "max_celsius": self.max_celsius,
            "throttled": self.throttled.to_dict() if self.throttled else None,
            "watchdog": self.watchdog, "llama_build": self.llama_build,
        }


def board_model(root: SysRoot, cpu: CpuFacts) -> str | None:
    """``/proc/device-tree/model`` (NUL-terminated), else cpuinfo's Model line, else DMI."""
    text = root.read("proc/device-tree/model") or root.read("sys/firmware/devicetree/base/model")
    if text:
        return text.replace("\x00", "").strip() or None
    if cpu.pi_model:
        return cpu.pi_model
    vendor = (root.read("sys/class/dmi/id/sys_vendor") or "").strip()
    product = (root.read("sys/class/dmi/id/product_name") or "").strip()
    return " ".join(x for x in (vendor, product) if x) or None


def watchdog_facts(root: SysRoot) -> dict[str, str | None]:
    """systemd's hardware watchdog (``RuntimeWatchdogSec``) and the device node."""
    runtime = None
    for rel in ["etc/systemd/system.conf", *[
        str(p.relative_to(root.root)) for p in root.glob("etc/systemd/system.conf.d/*.conf")
    ]]:
        for line in (root.read(rel) or "").splitlines():
            s = line.strip()
            if s.startswith("RuntimeWatchdogSec="):
                runtime = s.split("=", 1)[1].strip()
    device = "/dev/watchdog" if root.path("dev/watchdog").exists() else None
    return {"runtime_watchdog_sec": runtime, "device": device}


def probe(root: str | Path = "/", model_dir: str | Path | None = None) -> HardwareFacts:
    """Read the box's facts from ``root`` (``/`` live, or a capture directory)."""
    r = SysRoot(root)
    cpu = cpu_facts(r)
    board = board_model(r, cpu)
    is_pi = bool(board and "raspberry pi" in board.lower()) or bool(cpu.revision and cpu.pi_model)
    if model_dir is None:
        from slmnode.config import home_dir

        model_dir = home_dir() / "models" if r.live else "/"
    return HardwareFacts(
        root=str(root), board=board, is_raspberry_pi=is_pi, cpu=cpu, memory=memory_facts(r),
        storage=storage_facts(r, os.path.abspath(model_dir) if r.live else str(model_dir)),
        thermal=tuple(thermal_zones(r)), throttled=throttled_facts(r) if is_pi or not r.live else None,
        watchdog=watchdog_facts(r), llama_build={},
    )
