"""Thermal zones, and the Raspberry Pi firmware's throttling flags decoded bit by bit."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from slmnode.hardware.root import SysRoot

# Raspberry Pi documentation, "vcgencmd get_throttled".
THROTTLE_BITS: dict[int, str] = {
    0: "under_voltage",
    1: "arm_frequency_capped",
    2: "throttled",
    3: "soft_temperature_limit",
}
SINCE_BOOT_SHIFT = 16
VCGENCMD_TIMEOUT_S = 5.0  # vcgencmd answers in milliseconds; a firmware that hangs must not hang us


@dataclass(frozen=True)
class ThermalZone:
    name: str
    type: str | None
    celsius: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Throttled:
    raw: int
    now: tuple[str, ...]
    since_boot: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"raw": hex(self.raw), "now": list(self.now), "since_boot": list(self.since_boot)}

    @property
    def ok(self) -> bool:
        return not self.now and not self.since_boot


def decode_throttled(value: int) -> Throttled:
    now = tuple(name for bit, name in THROTTLE_BITS.items() if value >> bit & 1)
    since = tuple(name for bit, name in THROTTLE_BITS.items() if value >> (bit + SINCE_BOOT_SHIFT) & 1)
    return Throttled(value, now, since)


def parse_throttled_values(text: str) -> list[int]:
    """Every get_throttled value in ``text``, in order.

    Understands ``throttled=0x50005`` (vcgencmd), ``Under-voltage detected! (0x00050005)``
    (kernel log), a bare hex line ``80008`` (sysfs ``get_throttled``, hex without ``0x``) and
    sbc-bench's binary digit string (``1010000000000000000``).
    """
    values: list[int] = []
    for line in text.splitlines():
        s = line.strip()
        m = re.search(r"throttled=(0x[0-9a-fA-F]+)", s) or re.search(r"\((0x[0-9a-fA-F]+)\)", s)
        if m:
            values.append(int(m.group(1), 16))
        elif re.fullmatch(r"[01]{16,}", s):
            values.append(int(s, 2))
        elif re.fullmatch(r"[0-9a-fA-F]{1,8}", s):
            values.append(int(s, 16))
    return values


def throttled_facts(root: SysRoot) -> Throttled | None:
    """The Pi firmware's flags via vcgencmd; None on a machine that is not a Raspberry Pi.

    vcgencmd is preferred: the sysfs node reads 0 on some kernels even when vcgencmd does not
    (raspberrypi/linux#2367).
    """
    text = root.command("vcgencmd_get_throttled", ["vcgencmd", "get_throttled"], timeout=VCGENCMD_TIMEOUT_S)
    if text is None:
        text = root.read("sys/devices/platform/soc/soc:firmware/get_throttled")
    values = parse_throttled_values(text or "")
    return decode_throttled(values[-1]) if values else None


def parse_thermal_listing(text: str) -> list[ThermalZone]:
    """``grep . /sys/class/thermal/thermal_zone*/*`` output -> zones."""
    temps: dict[str, float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r".*/(thermal_zone\d+)/(temp|type):(.+)$", line.strip())
        if not m:
            continue
        zone, key, value = m.groups()
        if key == "temp" and value.strip().lstrip("-").isdigit():
            temps[zone] = int(value) / 1000
        elif key == "type":
            types[zone] = value.strip()
    return [ThermalZone(z, types.get(z), c) for z, c in sorted(temps.items())]


def thermal_zones(root: SysRoot) -> list[ThermalZone]:
    zones = []
    for d in root.glob("sys/class/thermal/thermal_zone*"):
        rel = str(d.relative_to(root.root))
        milli = root.read_int(f"{rel}/temp")
        if milli is None:
            continue
        typ = root.read(f"{rel}/type")
        zones.append(ThermalZone(d.name, typ.strip() if typ else None, milli / 1000))
    return zones
