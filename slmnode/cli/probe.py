"""``slmnode probe``: what this box is, as the planner and the doctor see it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from slmnode.cli.common import handle_errors, print_json
from slmnode.hardware.probe import HardwareFacts
from slmnode.hardware.probe import probe as probe_hardware

console = Console()
GiB = 1 << 30


def probe_with_build(root: str = "/", model_dir: Path | None = None) -> HardwareFacts:
    """The hardware probe plus the installed llama.cpp build's features (live root only)."""
    facts = probe_hardware(root, model_dir)
    if facts.root == "/":
        from slmnode.engine.build_info import build_features

        facts = dataclasses.replace(facts, llama_build=build_features())
    return facts


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / GiB:.1f} GiB"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print every fact as JSON.")
@click.option("--root", default="/", show_default=True,
              help="Read /proc and /sys under this directory (a capture of another box).")
@click.option("--model-dir", type=click.Path(path_type=Path), help="Where models live (default: $SLMNODE_HOME/models).")
@handle_errors
def probe(as_json: bool, root: str, model_dir: Path | None) -> None:
    """Probe the hardware: board, CPU features, RAM, swap, disk, temperatures, throttling.

    \b
    Examples:
      slmnode probe
      slmnode probe --json | jq .cpu.llama_features
      slmnode probe --root tests/data/boards/pi5-8gb     # facts from a capture
    """
    f = probe_with_build(root, model_dir)
    if as_json:
        print_json(f.to_dict())
        return
    t = Table("FACT", "VALUE", show_header=False)
    t.add_row("board", f.board or "?")
    t.add_row("cpu", f"{f.cpu.model or '?'} x{f.cpu.cores} ({f.cpu.arch or '?'})")
    t.add_row("llama.cpp features (CPU)", " ".join(f.cpu.llama_features) or "-")
    if f.llama_build:
        t.add_row("llama.cpp build", " ".join(k for k, v in f.llama_build.items() if v) or "-")
    t.add_row("frequency", f"{f.cpu.freq_cur_mhz or '?'} / {f.cpu.freq_max_mhz or '?'} MHz, "
              f"governor {f.cpu.governor or '?'}")
    t.add_row("RAM", f"{_gib(f.memory.available_bytes)} available of {_gib(f.memory.total_bytes)}")
    swaps = ", ".join(f"{s.name} {s.kind} {_gib(s.size_bytes)}{' ON SD' if s.on_sd_card else ''}"
                      for s in f.memory.swaps) or "none"
    t.add_row("swap", swaps)
    s = f.storage
    t.add_row("model storage", f"{s.path}: {s.kind} {s.device or '?'} ({s.fs_type or '?'}), "
              f"{'' if s.free_bytes is None else f'{s.free_bytes / 1e9:.1f} GB free, '}"
              f"{'noatime' if s.noatime else 'atime updates on'}")
    t.add_row("temperatures", ", ".join(f"{z.type or z.name} {z.celsius:.1f} °C" for z in f.thermal) or "-")
    if f.throttled is not None:
        th = f.throttled
        t.add_row("get_throttled", f"{hex(th.raw)} now: {', '.join(th.now) or 'ok'}; "
                  f"since boot: {', '.join(th.since_boot) or 'ok'}")
    t.add_row("watchdog", str(f.watchdog.get("runtime_watchdog_sec") or "not configured"))
    console.print(t)
