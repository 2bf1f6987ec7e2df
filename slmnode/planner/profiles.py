"""Device profiles: the effective figures the speed model needs for a box you may not have.

Each number says where it comes from (see docs/planner.md for the arithmetic). "Effective"
means what llama.cpp achieves, not the datasheet: ``gen_bandwidth`` is bytes of weights streamed
per second during token generation at the best thread count, ``prompt_flops`` the FLOP/s of
prompt processing (pp512) with all cores. Profiles are inputs to a model, not measurements of
your unit: thermals, power supply and memory clocks move real numbers by ±20%.

The profile of *this* machine comes from ``slmnode plan --calibrate`` (cached in
``$SLMNODE_HOME/calibration.json``) and is returned by ``get_profile("local")``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from slmnode.config import home_dir
from slmnode.errors import ConfigError

GB = 1_000_000_000
GiB = 1 << 30
LOCAL_NAMES = ("local", "this", "this-machine")
CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    arch: str  # "aarch64" | "x86_64"
    cores: int
    ram_bytes: int
    cpu_features: tuple[str, ...]  # ISA features llama.cpp uses (asimddp, i8mm, avx2, ...)
    gen_bandwidth: float  # effective bytes/s streamed during generation (best thread count)
    bw_saturation_threads: int  # threads at which generation bandwidth stops growing
    prompt_flops: float  # effective FLOP/s of prompt processing with all cores
    layer_overhead_s: float  # fixed cost per layer per generated token (graph, thread sync)
    repack_types: tuple[str, ...]  # weight types the CPU backend repacks (extra RSS)
    sources: str  # where the numbers come from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceProfile:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        for key in ("cpu_features", "repack_types"):
            kw[key] = tuple(kw.get(key, ()))
        return cls(**kw)


_A72 = ("fp", "asimd", "crc32")  # Cortex-A72: NEON only; no dotprod, no i8mm, no fp16 arithmetic
_A76 = ("fp", "asimd", "asimdhp", "fphp", "asimddp", "crc32", "atomics")  # dotprod, no i8mm
_N100 = ("sse3", "ssse3", "fma", "f16c", "avx", "avx2", "avx_vnni", "bmi2")

PROFILES: dict[str, DeviceProfile] = {
    "pi4-8gb": DeviceProfile(
        "pi4-8gb", "Raspberry Pi 4 Model B 8 GB (4x Cortex-A72 @ 1.8 GHz, LPDDR4-3200 32-bit)",
        "aarch64", 4, 8 * GiB, _A72,
        gen_bandwidth=3.3 * GB, bw_saturation_threads=4, prompt_flops=21e9,
        layer_overhead_s=0.15e-3, repack_types=(),
        sources="gen_bandwidth and prompt_flops fitted to ONE row: TinyLlama 1.1B Q8_0 on a Pi 4 with "
        "llama.cpp 2024-03-26 (3 tok/s eval, 10 tok/s prompt; justine.lol llamafile post, "
        "shared/data/llama-bench). Cross-check: tinymembench single-core copy 2.4 GB/s "
        "(sbc-bench 3L37) = 4.8 GB/s traffic. layer_overhead is an estimate. No repack: "
        "llama.cpp's Q4_0/IQ4_NL/Q4_K repacked kernels need dotprod or i8mm, which the A72 lacks.",
    ),
    "pi4-4gb": DeviceProfile(
        "pi4-4gb", "Raspberry Pi 4 Model B 4 GB (same SoC as pi4-8gb)",
        "aarch64", 4, 4 * GiB, _A72,
        gen_bandwidth=3.3 * GB, bw_saturation_threads=4, prompt_flops=21e9,
        layer_overhead_s=0.15e-3, repack_types=(),
        sources="as pi4-8gb (same BCM2711 SoC and memory type), with 4 GiB RAM.",
    ),
    "pi5-8gb": DeviceProfile(
        "pi5-8gb", "Raspberry Pi 5 8 GB (4x Cortex-A76 @ 2.4 GHz, LPDDR4X-4267 32-bit)",
        "aarch64", 4, 8 * GiB, _A76,
        gen_bandwidth=10.69 * GB, bw_saturation_threads=2, prompt_flops=80e9,
        layer_overhead_s=0.05e-3, repack_types=("Q4_0", "IQ4_NL"),
        sources="gen_bandwidth: llama-roofline fit over 7 models on a Pi 5 (10.69 GB/s, R^2 0.98; "
        "converted from a published study); best decode threads 2 (same report). prompt_flops: "
        "between Qwen3-30B-A3B Q3_K_S pp512 10.91 tok/s (66 GFLOP/s, llama-bench, Pi 5 16 GB) "
        "and Llama 2 7B Q4_0 prompt 8.10 tok/s (107 GFLOP/s, llama.cpp PR 6928). "
        "layer_overhead is an estimate.",
    ),
    "n100-16gb": DeviceProfile(
        "n100-16gb", "Intel N100 mini PC, 16 GB DDR5-4800 single channel (4x Gracemont)",
        "x86_64", 4, 16 * GiB, _N100,
        gen_bandwidth=18.0 * GB, bw_saturation_threads=2, prompt_flops=100e9,
        layer_overhead_s=0.03e-3, repack_types=("Q4_0", "Q4_K", "IQ4_NL"),
        sources="gen_bandwidth: Llama 3.2 3B Q4_K_M at 9.06 tok/s on a GMKtec G3 Plus (N150, same "
        "memory system; geerlingguy/ai-benchmarks) x 2.05 GB read per token. prompt_flops: "
        "an ESTIMATE (no N100 prompt measurement in shared data): 4 cores x 3.4 GHz x AVX2 "
        "int8 at the efficiency llama.cpp reaches on this repository's x86 calibration.",
    ),
}


def calibration_path() -> Any:
    return home_dir() / CALIBRATION_FILE


def load_local_profile() -> DeviceProfile | None:
    """The cached calibration of this machine, or None if ``plan --calibrate`` never ran."""
    path = calibration_path()
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return DeviceProfile.from_dict(data["profile"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"calibration cache {path} is unreadable ({exc}); run `slmnode plan --calibrate` again"
        ) from exc


def save_local_profile(profile: DeviceProfile, measurement: dict[str, Any]) -> None:
    path = calibration_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"profile": profile.to_dict(), "measurement": measurement}, indent=2))
    tmp.replace(path)


def get_profile(name: str) -> DeviceProfile:
    """A device profile by name; ``local`` is this machine's calibration.

    Raises :class:`ConfigError` naming the known profiles.
    """
    key = name.strip().lower()
    if key in PROFILES:
        return PROFILES[key]
    if key in LOCAL_NAMES:
        local = load_local_profile()
        if local is None:
            raise ConfigError("this machine is not calibrated yet; run `slmnode plan --calibrate`")
        return local
    raise ConfigError(
        f"unknown device profile {name!r}; known: {', '.join([*PROFILES, 'local'])}"
    )
