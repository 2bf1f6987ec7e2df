"""get_throttled samples and thermal listings from tests/data/thermal-power/, decoded bit by bit."""

from __future__ import annotations

from pathlib import Path

import pytest

from slmnode.hardware.root import SysRoot
from slmnode.hardware.thermal import decode_throttled, parse_thermal_listing, parse_throttled_values, throttled_facts

DATA = Path(__file__).parents[2] / "data" / "thermal-power"
UV, CAP, THR, SOFT = "under_voltage", "arm_frequency_capped", "throttled", "soft_temperature_limit"

# file -> every get_throttled value in it, in order
VALUES: dict[str, list[int]] = {
    "bluerobotics-companion-58_pi3_0x50005.txt": [0x50005],
    "genmon-106_pi3bplus_0x50000_gpio-header-power.txt": [0x50000],
    "raspiblitz-4008_0x80000_hot-77C.txt": [0x80000],
    "rpi-docs-2546_pi4b-1gb_0x80008_soft-temp-limit.txt": [0x80008],
    "rpi-firmware-615_pi3_0x50000.txt": [0x50000],
    "rpi-firmware-615_pi3_0x50005.txt": [0x50005],
    "rpi-linux-2367_pi3bplus_0x80008_sysfs-reads-0.txt": [0x80008, 0],  # vcgencmd, then sysfs 0
    "sensor-rpi_power-6_pi3bplus_sysfs_80000_80008.txt": [0x80000, 0x80008],  # hex without 0x
    "snip-OGN-receiver-10_dmesg_undervoltage_0x00050005.txt": [0x50005, 0, 0x50005, 0],
    "sbc-bench_3Llk_pi4b-4gb_oc2200_throttling.txt": [0xE0000],  # 20 binary digits
    "sbc-reviews-21_pi5_0x50000_undervoltage_sbc-bench.txt": [0x50000],  # 19 binary digits
    # no get_throttled value in these:
    "rpi-cm4-ptp-guide-19_cm4_thermal_zone0_sysfs.txt": [],
    "rpi-linux-5584_pi4b_usb-ssd_dmesg_undervoltage.txt": [],
    "rpi-linux-5584_pi4b_usb-ssd_sensors.txt": [],
    "rpi-os-64bit-135_pi4_80C_measure_temp_clock.txt": [],
    "rpi-os-64bit-135_pi4_thermal_zone0_74C_excerpt.txt": [],
}

DECODED: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    0x0: ((), ()),
    0x50000: ((), (UV, THR)),
    0x50005: ((UV, THR), (UV, THR)),
    0x80000: ((), (SOFT,)),
    0x80008: ((SOFT,), (SOFT,)),
    0xE0000: ((), (CAP, THR, SOFT)),
}

THERMAL: dict[str, list[tuple[str, str | None, float]]] = {
    "rpi-cm4-ptp-guide-19_cm4_thermal_zone0_sysfs.txt": [("thermal_zone0", None, 47.712)],
    "rpi-os-64bit-135_pi4_thermal_zone0_74C_excerpt.txt": [("thermal_zone0", "cpu-thermal", 74.01)],
}


def test_every_sample_is_in_the_table() -> None:
    assert sorted(p.name for p in DATA.iterdir()) == sorted(VALUES)


@pytest.mark.parametrize("name", sorted(VALUES))
def test_values(name: str) -> None:
    assert parse_throttled_values((DATA / name).read_text()) == VALUES[name]


@pytest.mark.parametrize("value", sorted(DECODED))
def test_bits(value: int) -> None:
    d = decode_throttled(value)
    assert (d.now, d.since_boot) == DECODED[value]
    assert d.ok is (value == 0)


@pytest.mark.parametrize("name", sorted(THERMAL))
def test_thermal_listing(name: str) -> None:
    zones = parse_thermal_listing((DATA / name).read_text())
    assert [(z.name, z.type, z.celsius) for z in zones] == THERMAL[name]


def test_capture_root_reads_vcgencmd_output(tmp_path: Path) -> None:
    """A capture's cmd/vcgencmd_get_throttled.txt stands in for running vcgencmd."""
    (tmp_path / "cmd").mkdir()
    (tmp_path / "cmd" / "vcgencmd_get_throttled.txt").write_text(
        (DATA / "rpi-firmware-615_pi3_0x50005.txt").read_text())
    th = throttled_facts(SysRoot(tmp_path))
    assert th is not None and th.raw == 0x50005 and UV in th.now


def test_sysfs_fallback_and_live_thermal_zone_layout(tmp_path: Path) -> None:
    node = tmp_path / "sys/devices/platform/soc/soc:firmware"
    node.mkdir(parents=True)
    node.joinpath("get_throttled").write_text("80008\n")
    zone = tmp_path / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    zone.joinpath("temp").write_text("74010\n")  # value from the rpi-os-64bit-135 capture
    zone.joinpath("type").write_text("cpu-thermal\n")
    from slmnode.hardware.thermal import thermal_zones

    root = SysRoot(tmp_path)
    assert throttled_facts(root).since_boot == (SOFT,)  # type: ignore[union-attr]
    assert [(z.type, z.celsius) for z in thermal_zones(root)] == [("cpu-thermal", 74.01)]
