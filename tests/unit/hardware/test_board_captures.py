"""The probe's decoded facts for every real board capture under tests/data/boards/.

Captures are real files from real boards (see tests/data/misc/PROVENANCE.md). A new capture
directory must get a row here: the first test fails otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slmnode.hardware.memory import parse_swaps
from slmnode.hardware.probe import probe

BOARDS = Path(__file__).parents[2] / "data" / "boards"

# board dir -> facts the probe must decode from its proc/ and sys/ files (None: not captured)
EXPECTED: dict[str, dict[str, Any]] = {
    "pi4b-8gb": {
        "board": "Raspberry Pi 4 Model B Rev 1.4", "is_pi": True, "cpu": "Cortex-A72", "cores": 4,
        "arch": "aarch64", "llama_features": ("asimd",), "revision": "d03114",
        "mem_total": 8000520 * 1024, "mem_available": 7799852 * 1024, "swaps": [],
        "freq_cur_mhz": 600.0,
    },
    "pi4b-4gb": {
        "board": None, "is_pi": False, "cpu": None, "cores": 0, "arch": None, "llama_features": (),
        "revision": None, "mem_total": 3845824 * 1024, "mem_available": 3537772 * 1024,
        "swaps": [], "freq_cur_mhz": None,
    },
    "pi5-8gb": {
        "board": "Raspberry Pi 5 Model B Rev 1.0", "is_pi": True, "cpu": "Cortex-A76", "cores": 4,
        "arch": "aarch64", "llama_features": ("asimd", "asimddp", "fphp", "asimdhp"),
        "revision": "d04170", "mem_total": None, "mem_available": None,
        "swaps": [("/dev/zram0", "zram", 2097136 * 1024, 100, False)], "freq_cur_mhz": None,
    },
    "jetson-nano-4gb": {
        "board": None, "is_pi": False, "cpu": "Cortex-A57", "cores": 4, "arch": "aarch64",
        "llama_features": ("asimd",), "revision": None, "mem_total": None, "mem_available": None,
        "swaps": [], "freq_cur_mhz": None,
    },
    "x86-n100-minipc-azw-eq": {
        "board": None, "is_pi": False, "cpu": None, "cores": 0, "arch": None, "llama_features": (),
        "revision": None, "mem_total": None, "mem_available": None, "swaps": [],
        "freq_cur_mhz": None,
    },
}

# `swapon -s` prints the /proc/swaps table, so the same parser reads it.
SWAPON_S: dict[str, list[tuple[str, str, int, int]]] = {
    "pi4b-4gb": [("/dev/zram0", "zram", 262140 * 1024, 100), ("/var/swap", "file", 102396 * 1024, -2)],
    "pi5-8gb": [("/var/swap", "file", 102384 * 1024, -2)],
    "x86-n100-minipc-azw-eq": [("/dev/zram0", "zram", 8074580 * 1024, 5)],
    "jetson-nano-4gb": [("/dev/zram0", "zram", 1014808 * 1024, 5), ("/dev/zram1", "zram", 1014808 * 1024, 5)],
}


def test_every_capture_has_expectations() -> None:
    assert sorted(p.name for p in BOARDS.iterdir() if p.is_dir()) == sorted(EXPECTED)


@pytest.mark.parametrize("board", sorted(EXPECTED))
def test_probe_decodes_capture(board: str) -> None:
    exp = EXPECTED[board]
    f = probe(BOARDS / board, model_dir="/")
    assert f.board == exp["board"]
    assert f.is_raspberry_pi is exp["is_pi"]
    assert f.cpu.model == exp["cpu"]
    assert f.cpu.cores == exp["cores"]
    assert f.cpu.arch == exp["arch"]
    assert f.cpu.llama_features == exp["llama_features"]
    assert f.cpu.revision == exp["revision"]
    assert f.cpu.freq_cur_mhz == exp["freq_cur_mhz"]
    assert f.memory.total_bytes == exp["mem_total"]
    assert f.memory.available_bytes == exp["mem_available"]
    got = [(s.name, s.kind, s.size_bytes, s.priority, s.on_sd_card) for s in f.memory.swaps]
    assert got == exp["swaps"]
    assert f.thermal == ()  # no sys/class/thermal in any capture: nothing invented
    assert f.to_dict()["cpu"]["model"] == exp["cpu"]  # serialisable for --json


@pytest.mark.parametrize("board", sorted(SWAPON_S))
def test_swapon_s_output(board: str) -> None:
    text = (BOARDS / board / "cmd" / "swapon_s.txt").read_text()
    got = [(s.name, s.kind, s.size_bytes, s.priority) for s in parse_swaps(text)]
    assert got == SWAPON_S[board]


def test_pi_arm_cores_lack_dotprod_and_i8mm() -> None:
    """The Pi 4's A72 has NEON only; the Pi 5's A76 adds dotprod but not i8mm."""
    pi4 = probe(BOARDS / "pi4b-8gb", model_dir="/").cpu
    pi5 = probe(BOARDS / "pi5-8gb", model_dir="/").cpu
    assert not pi4.has("asimddp") and not pi4.has("i8mm")
    assert pi5.has("asimddp") and not pi5.has("i8mm")


def test_swap_file_on_sd_card_is_detected() -> None:
    # /proc/swaps row of pi4b-4gb's swap file, with the root filesystem on the SD card.
    text = (BOARDS / "pi4b-4gb" / "cmd" / "swapon_s.txt").read_text()
    swaps = parse_swaps(text, [("/", "/dev/mmcblk0p2"), ("/boot", "/dev/mmcblk0p1")])
    assert [(s.name, s.on_sd_card) for s in swaps] == [("/dev/zram0", False), ("/var/swap", True)]
    swaps = parse_swaps(text, [("/", "/dev/sda2")])
    assert [(s.name, s.on_sd_card) for s in swaps] == [("/dev/zram0", False), ("/var/swap", False)]
