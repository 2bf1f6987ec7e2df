"""The doctor's checks. Each returns a :class:`Finding`: status, a one-line reason, the fix.

Every check reads facts only from :class:`~slmnode.hardware.probe.HardwareFacts`, so tests run
them against real board captures. Pi-only checks return ``na`` elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from slmnode.catalog.store import ModelStore
from slmnode.hardware.probe import HardwareFacts
from slmnode.planner.fit import fits

Status = Literal["pass", "warn", "fail", "na"]
GB = 1_000_000_000
GiB = 1 << 30
MiB = 1 << 20


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    reason: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DoctorContext:
    """What the doctor is checking the box *for*."""

    model: str
    need_bytes: int  # planned RAM of that model as `serve` would run it (see slmnode.doctor.context)
    min_free_disk_bytes: int = 5 * GB
    min_swap_bytes: int = 2 * GiB
    max_idle_celsius: float = 50.0
    store: ModelStore | None = None  # the model store to check (None: the configured one)


def check_ram(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    """The rule `serve` refuses a load by (:func:`slmnode.planner.fit.fits`), so both agree."""
    verdict = fits(ctx.need_bytes, f.memory.available_bytes)
    if verdict.available_bytes is None:
        return Finding("ram", "na", "available RAM unknown (no MemAvailable in /proc/meminfo)")
    msg = (f"{verdict.available_bytes / GiB:.2f} GiB available; {ctx.model} needs {ctx.need_bytes / GiB:.2f} GiB "
           f"+ {verdict.margin_bytes / MiB:.0f} MiB margin")
    if verdict.fits:
        return Finding("ram", "pass", msg)
    return Finding("ram", "fail", msg + "; `slmnode serve` would refuse to load it",
                   "slmnode plan --goal chat   # pick a smaller model/quant, or lower --ctx / use --kv-type q8_0")


def check_disk(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    free = f.storage.free_bytes
    if free is None:
        return Finding("disk", "na", "free space unknown for a captured root")
    msg = f"{free / GB:.1f} GB free on {f.storage.mount_point} for {f.storage.path}"
    if free >= ctx.min_free_disk_bytes:
        return Finding("disk", "pass", msg)
    return Finding("disk", "fail", msg + f" (< {ctx.min_free_disk_bytes / GB:.0f} GB)",
                   "slmnode models list && slmnode models rm NAME   # or move SLMNODE_HOME to a bigger disk")


ZRAM_FIX = ("sudo apt-get install -y zram-tools && printf 'ALGO=zstd\\nPERCENT=50\\n' | "
            "sudo tee /etc/default/zramswap && sudo systemctl restart zramswap")


def check_swap(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    swaps = f.memory.swaps
    total = sum(s.size_bytes for s in swaps)
    if not f.memory.swaps_known:
        return Finding("swap", "na", "/proc/swaps unreadable")
    if not swaps:
        return Finding("swap", "warn", "no swap: a burst of memory use kills the model worker "
                       "(OOM) instead of slowing it", ZRAM_FIX)
    zram = sum(s.size_bytes for s in swaps if s.kind == "zram")
    msg = f"{total / GiB:.1f} GiB swap ({zram / GiB:.1f} GiB zram)"
    # "2G" zram is 2 GiB minus a page or so (2097136 kB on Raspberry Pi OS): allow 1% slack
    if zram and total >= 0.99 * ctx.min_swap_bytes:
        return Finding("swap", "pass", msg)
    return Finding("swap", "warn", msg + f"; want >= {ctx.min_swap_bytes / GiB:.0f} GiB with zram",
                   ZRAM_FIX)


def check_swap_not_on_sd(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    on_sd = [s.name for s in f.memory.swaps if s.on_sd_card]
    if not f.memory.swaps_known:
        return Finding("swap-on-sd", "na", "/proc/swaps unreadable")
    if not f.memory.swaps:
        return Finding("swap-on-sd", "na", "no swap devices")
    if on_sd:
        return Finding("swap-on-sd", "fail", f"swap on the SD card ({', '.join(on_sd)}) wears it "
                       "out and stalls the box", "sudo dphys-swapfile swapoff && sudo dphys-swapfile "
                       "uninstall && sudo systemctl disable --now dphys-swapfile")
    unknown = [s.name for s in f.memory.swaps if s.on_sd_card is None]
    if unknown:
        return Finding("swap-on-sd", "warn", f"cannot tell which disk holds {', '.join(unknown)}",
                       "swapon --show && lsblk -o NAME,TYPE,MOUNTPOINTS")
    return Finding("swap-on-sd", "pass", "no swap on an SD card")


def check_temperature(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    t = f.max_celsius
    if t is None:
        return Finding("temperature", "na", "no thermal zones exposed (VM or container)")
    if t < ctx.max_idle_celsius:
        return Finding("temperature", "pass", f"{t:.1f} °C now (< {ctx.max_idle_celsius:.0f} °C)")
    status: Status = "fail" if t >= 80 else "warn"
    return Finding("temperature", status, f"{t:.1f} °C now; at 80 °C a Pi throttles its clock, "
                   "and sustained generation heats it further", "add a heatsink and fan (e.g. the "
                   "official Active Cooler), then re-run: slmnode doctor")


def check_throttling(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    if not f.is_raspberry_pi:
        return Finding("throttling", "na", "not a Raspberry Pi (no firmware throttling flags)")
    th = f.throttled
    if th is None:
        return Finding("throttling", "warn", "vcgencmd get_throttled unavailable",
                       "sudo apt-get install -y libraspberrypi-bin")
    if th.ok:
        return Finding("throttling", "pass", f"get_throttled={hex(th.raw)}: no throttling or "
                       "under-voltage since boot")
    flags = ", ".join([f"{n} now" for n in th.now] + [f"{n} since boot" for n in th.since_boot])
    if "under_voltage" in th.now or "under_voltage" in th.since_boot:
        return Finding("throttling", "fail", f"get_throttled={hex(th.raw)}: {flags}",
                       "use the official 5.1 V supply (Pi 4: 3 A, Pi 5: 5 A) and a short cable; "
                       "power USB disks from a powered hub")
    return Finding("throttling", "warn", f"get_throttled={hex(th.raw)}: {flags}",
                   "improve cooling (heatsink + fan), then reboot and re-run: slmnode doctor")


def check_noatime(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    s = f.storage
    if s.mount_point is None:
        return Finding("noatime", "na", f"mount of {s.path} unknown")
    if s.noatime:
        return Finding("noatime", "pass", f"{s.mount_point} mounted noatime")
    return Finding("noatime", "warn", f"{s.mount_point} ({s.device}, {s.kind}) lacks noatime: every "
                   "model read also writes metadata",
                   f"sudo mount -o remount,noatime {s.mount_point}   # and add noatime to its "
                   "options in /etc/fstab")


def check_model_storage(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    kind = f.storage.kind
    if kind == "sd-card":
        return Finding("model-storage", "warn", "models on an SD card: loads at ~40 MB/s and the "
                       "card wears", "move SLMNODE_HOME to a USB 3 / NVMe SSD: "
                       "export SLMNODE_HOME=/mnt/ssd/slmnode")
    if kind in ("unknown",):
        return Finding("model-storage", "na", f"device kind of {f.storage.device} unknown")
    return Finding("model-storage", "pass", f"models on {kind} ({f.storage.device})")


def check_watchdog(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    value = f.watchdog.get("runtime_watchdog_sec")
    if value and value.lower() not in ("0", "off", "infinity"):
        return Finding("watchdog", "pass", f"systemd RuntimeWatchdogSec={value}")
    return Finding("watchdog", "warn", "no hardware watchdog configured: a hung box stays hung",
                   "sudo sed -i 's/^#\\?RuntimeWatchdogSec=.*/RuntimeWatchdogSec=15/' "
                   "/etc/systemd/system.conf && sudo systemctl daemon-reexec")


def check_governor(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    gov = f.cpu.governor
    if gov is None:
        return Finding("governor", "na", "no cpufreq governor exposed")
    if gov in ("performance", "schedutil", "ondemand"):
        return Finding("governor", "pass", f"cpufreq governor {gov}")
    return Finding("governor", "warn", f"cpufreq governor {gov} keeps the clock low under load",
                   "echo ondemand | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor")


# CPU feature (as /proc/cpuinfo names it) -> llama.cpp system_info flag
_FEATURE_TO_BUILD = {
    "asimd": "NEON", "asimddp": "DOTPROD", "i8mm": "MATMUL_INT8", "sve": "SVE",
    "asimdhp": "FP16_VA", "avx": "AVX", "avx2": "AVX2", "f16c": "F16C", "fma": "FMA",
    "avx512f": "AVX512", "avx_vnni": "AVX_VNNI", "avx512_vnni": "AVX512_VNNI",
}


def check_build_features(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    build = f.llama_build
    if not build:
        return Finding("llama-build", "na", "llama.cpp build features unknown")
    # A flag the build prints as 0 while the CPU has the feature is a slower path than it could be.
    missing = [f"{feat} ({flag})" for feat, flag in _FEATURE_TO_BUILD.items()
               if f.cpu.has(feat) and build.get(flag) == 0]
    if missing:
        return Finding("llama-build", "warn", "the CPU has features the llama.cpp build does not "
                       f"use: {', '.join(missing)}",
                       "CMAKE_ARGS='-DGGML_NATIVE=ON' uv pip install --reinstall --no-binary "
                       "llama-cpp-python llama-cpp-python")
    used = [flag for feat, flag in _FEATURE_TO_BUILD.items() if f.cpu.has(feat) and build.get(flag)]
    return Finding("llama-build", "pass", f"build uses the CPU's {', '.join(used) or 'baseline'}")


def check_kleidiai(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    if f.cpu.arch != "aarch64":
        return Finding("kleidiai", "na", "KleidiAI is an Arm-only kernel library")
    dot, mm = f.cpu.has("asimddp"), f.cpu.has("i8mm")
    if not dot and not mm:
        return Finding("kleidiai", "na", f"{f.cpu.model or 'this CPU'} has neither dotprod nor i8mm, "
                       "which every KleidiAI kernel needs: building llama.cpp with "
                       "GGML_CPU_KLEIDIAI=ON gives nothing here (NEON kernels run either way)")
    if f.llama_build.get("KLEIDIAI"):
        return Finding("kleidiai", "pass", "build has KleidiAI and the CPU has "
                       + ("i8mm" if mm else "dotprod"))
    return Finding("kleidiai", "pass", "CPU has " + ("i8mm" if mm else "dotprod") + "; the build "
                   "uses ggml's own dotprod/i8mm kernels (KleidiAI optional)")


def check_model_store(f: HardwareFacts, ctx: DoctorContext) -> Finding:
    broken = (ctx.store or ModelStore()).broken()
    if not broken:
        return Finding("model-store", "pass", "every model manifest in the store is usable")
    more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
    return Finding("model-store", "warn", f"{broken[0].reason}{more}; the node skips such models",
                   "rm " + " ".join(f"'{b.path}'" for b in broken) + "   # then re-import the model: "
                   "slmnode models import PATH --name NAME (or slmnode pull NAME)")


CHECKS: list[Callable[[HardwareFacts, DoctorContext], Finding]] = [
    check_ram, check_disk, check_swap, check_swap_not_on_sd, check_temperature, check_throttling,
    check_noatime, check_model_storage, check_watchdog, check_governor, check_build_features,
    check_kleidiai, check_model_store,
]


def run_checks(facts: HardwareFacts, ctx: DoctorContext) -> list[Finding]:
    return [check(facts, ctx) for check in CHECKS]


def exit_code(findings: list[Finding]) -> int:
    """2 on any fail, 0 otherwise (warnings are advice)."""
    return 2 if any(x.status == "fail" for x in findings) else 0
