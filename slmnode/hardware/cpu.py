"""CPU facts: model, cores, architecture, the ISA features llama.cpp cares about, frequency."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from slmnode.hardware.root import SysRoot

# ARM "CPU part" -> core name (implementer 0x41 = Arm Ltd).
ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
    "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd49": "Neoverse-N2",
    "0xd4f": "Neoverse-V2", "0xd80": "Cortex-A520", "0xd81": "Cortex-A720",
}
# Features llama.cpp's CPU backend selects kernels by.
ARM_LLAMA_FEATURES = ("asimd", "asimddp", "i8mm", "sve", "sve2", "fphp", "asimdhp", "bf16")
X86_LLAMA_FEATURES = ("sse3", "ssse3", "avx", "avx2", "f16c", "fma", "bmi2", "avx_vnni",
                      "avx512f", "avx512_vnni", "avx512_bf16", "avx512vbmi", "amx_int8")


def default_threads() -> int:
    """llama.cpp's rule: one thread per physical core (at least 1)."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@dataclass(frozen=True)
class CpuFacts:
    model: str | None
    arch: str | None
    cores: int
    flags: tuple[str, ...]  # every flag/feature /proc/cpuinfo lists (first CPU)
    llama_features: tuple[str, ...]  # the subset llama.cpp cares about
    soc_hardware: str | None  # "Hardware" line (BCM2835 on Raspberry Pi OS kernels)
    revision: str | None  # Raspberry Pi board revision code
    pi_model: str | None  # "Model" line of a Raspberry Pi cpuinfo
    freq_cur_mhz: float | None
    freq_max_mhz: float | None
    governor: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def has(self, feature: str) -> bool:
        return feature in self.flags


def _fields(block: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    return out


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """Facts from a ``/proc/cpuinfo`` text (x86 or ARM layout)."""
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    per_cpu = [_fields(b) for b in blocks if re.search(r"^processor\s*:", b, re.M)]
    tail: dict[str, str] = {}
    for b in blocks:
        if not re.search(r"^processor\s*:", b, re.M):
            tail.update(_fields(b))
    first = per_cpu[0] if per_cpu else _fields(text)
    flags = tuple((first.get("flags") or first.get("Features") or "").split())
    is_arm = "Features" in first or "CPU implementer" in first
    model = first.get("model name")
    part = first.get("CPU part", "").lower()
    if is_arm and part in ARM_PARTS and first.get("CPU implementer", "").lower() == "0x41":
        model = ARM_PARTS[part]  # ARM's "model name" is just "ARMv7/ARMv8 Processor rev N"
    arch = None
    if is_arm:
        arch = "aarch64" if ("asimd" in flags or first.get("CPU architecture") == "8") else "armv7l"
    elif flags:
        arch = "x86_64" if "lm" in flags else "i686"
    wanted = ARM_LLAMA_FEATURES if is_arm else X86_LLAMA_FEATURES
    if not is_arm:
        aliases = {"pni": "sse3", "avx512vnni": "avx512_vnni", "avx_vnni": "avx_vnni"}
        flags = tuple(sorted(set(flags) | {aliases[f] for f in flags if f in aliases}))
    return {
        "model": model, "arch": arch, "cores": len(per_cpu) or None, "flags": flags,
        "llama_features": tuple(f for f in wanted if f in flags),
        "soc_hardware": tail.get("Hardware") or first.get("Hardware"),
        "revision": tail.get("Revision") or first.get("Revision"),
        "pi_model": tail.get("Model") or first.get("Model"),
    }


def _khz_to_mhz(value: int | None) -> float | None:
    return value / 1000 if value else None


def cpu_facts(root: SysRoot) -> CpuFacts:
    info = parse_cpuinfo(root.read("proc/cpuinfo") or "")
    base = "sys/devices/system/cpu/cpu0/cpufreq/"
    cores = info["cores"] or (psutil.cpu_count(logical=True) if root.live else 0) or 0
    arch = info["arch"] or (platform.machine() if root.live else None)
    gov = root.read(base + "scaling_governor")
    return CpuFacts(
        model=info["model"], arch=arch, cores=cores, flags=info["flags"],
        llama_features=info["llama_features"], soc_hardware=info["soc_hardware"],
        revision=info["revision"], pi_model=info["pi_model"],
        freq_cur_mhz=_khz_to_mhz(root.read_int(base + "scaling_cur_freq")),
        freq_max_mhz=_khz_to_mhz(root.read_int(base + "cpuinfo_max_freq")
                                 or root.read_int(base + "scaling_max_freq")),
        governor=gov.strip() if gov else None,
    )
