"""The live probe on this machine (whatever it is) and storage decoding."""

from __future__ import annotations

from pathlib import Path

import pytest

from slmnode.hardware.cpu import default_threads, parse_cpuinfo
from slmnode.hardware.probe import board_model, probe
from slmnode.hardware.root import SysRoot
from slmnode.hardware.storage import block_name, storage_facts

BOARDS = Path(__file__).parents[2] / "data" / "boards"


def test_live_probe_does_not_crash_and_is_consistent(tmp_path: Path) -> None:
    f = probe("/", model_dir=tmp_path)
    assert f.cpu.cores >= 1
    assert f.memory.total_bytes and f.memory.available_bytes
    assert 0 < f.memory.available_bytes <= f.memory.total_bytes
    assert f.storage.free_bytes is not None and f.storage.free_bytes > 0
    assert default_threads() >= 1
    if not f.is_raspberry_pi:
        assert f.throttled is None


@pytest.mark.parametrize(("device", "block"), [
    ("/dev/mmcblk0p2", "mmcblk0"), ("/dev/sda1", "sda"), ("/dev/nvme0n1p2", "nvme0n1"),
    ("/dev/vda", "vda"), ("overlay", None),
])
def test_block_name(device: str, block: str | None) -> None:
    assert block_name(device) == block


def test_storage_from_mounts(tmp_path: Path) -> None:
    # Mount options as Raspberry Pi OS Bookworm ships them (tests/data/misc fstab: defaults,noatime).
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/mounts").write_text(
        "/dev/mmcblk0p2 / ext4 rw,noatime 0 0\n/dev/sda1 /mnt/ssd ext4 rw,relatime 0 0\n")
    (tmp_path / "sys/block/sda/queue").mkdir(parents=True)
    (tmp_path / "sys/block/sda/queue/rotational").write_text("0\n")
    root = SysRoot(tmp_path)
    sd = storage_facts(root, "/home/pi/models")
    assert (sd.mount_point, sd.kind, sd.noatime) == ("/", "sd-card", True)
    ssd = storage_facts(root, "/mnt/ssd/slmnode/models")
    assert (ssd.mount_point, ssd.kind, ssd.noatime) == ("/mnt/ssd", "ssd", False)


def test_device_tree_model_is_nul_terminated(tmp_path: Path) -> None:
    """/proc/device-tree/model ends in NUL with no newline (see the pi4b-8gb terminal capture)."""
    terminal = (BOARDS / "pi4b-8gb/cmd/cat_proc_device-tree_model.terminal.txt").read_text()
    assert terminal.startswith("Raspberry Pi 4 Model B Rev 1.4root")
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    root = SysRoot(tmp_path)
    cpu = probe(tmp_path, model_dir="/").cpu
    assert board_model(root, cpu) == "Raspberry Pi 4 Model B Rev 1.4"


def test_x86_cpuinfo_flags() -> None:
    text = "processor\t: 0\nmodel name\t: Intel(R) N100\nflags\t\t: fpu lm pni ssse3 fma avx avx2 f16c\n\n"
    info = parse_cpuinfo(text)
    assert info["arch"] == "x86_64" and info["model"] == "Intel(R) N100"
    assert info["llama_features"] == ("sse3", "ssse3", "avx", "avx2", "f16c", "fma")
