"""``slmnode pull NAME``: fetch a model from the Hugging Face hub into the store, checked first.

Parses and prints only. The pull is :func:`slmnode.catalog.pull.pull`; the default quant and the RAM
check come from :mod:`slmnode.planner.pull_check` (the planner's estimate and the shared fit rule).
"""

from __future__ import annotations

import sys
from typing import Any, Self

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from slmnode.catalog.aliases import resolve_target
from slmnode.catalog.pull import DEFAULT_KEEP_FREE, fmt_bytes, parse_size, pull
from slmnode.catalog.store import ModelStore
from slmnode.cli.common import err_console, handle_errors, print_json
from slmnode.config import load_settings
from slmnode.errors import InsufficientResources
from slmnode.hardware.root import SysRoot
from slmnode.hardware.storage import storage_facts
from slmnode.planner.profiles import GiB
from slmnode.planner.pull_check import MemorySide, make_quant_pick, make_ram_check

__all__ = ["parse_size", "pull_cmd"]
console = Console()
EXIT_REFUSED = 3  # a pre-download check (disk or RAM) refused; --force overrides


class _RichBar:
    """The progress-bar shape huggingface_hub's ``http_get`` expects (a tqdm-like context manager)."""

    progress: Progress | None = None

    def __init__(self, *, desc: str | None = None, total: int | None = None, initial: int = 0, **_: Any) -> None:
        assert self.progress is not None
        self.task = self.progress.add_task(desc or "", total=total, completed=initial)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        assert self.progress is not None
        self.progress.advance(self.task, n)


@click.command("pull")
@click.argument("name")
@click.option("--quant", "-q", help="Quant type (Q4_K_M, Q4_K_S, Q8_0, ...). Default: the planner's pick, else Q4_K_M.")
@click.option("--force", is_flag=True, help="Download even when the disk or RAM check refuses.")
@click.option("--name", "store_name", help="Name in the store (default: the alias with its quant, or the file name).")
@click.option("--ctx", "-c", type=int, help="Context to check the RAM fit at (default: the configured ctx).")
@click.option("--kv-type", type=click.Choice(["f16", "q8_0", "q4_0"]), help="KV cache type for the RAM check.")
@click.option("--device", "-d",
              help="Check against a device profile (pi4-8gb, pi4-4gb, pi5-8gb, ...) instead of this machine.")
@click.option("--keep-free", default=None,
              help=f"Disk space to leave free after the download (default {DEFAULT_KEEP_FREE // GiB}G).")
@click.option("--revision", help="Hub branch, tag or commit (default main).")
@click.option("--sha256", "expected", help="Expected sha256 (required to verify plain https URLs).")
@click.option("--json", "as_json", is_flag=True, help="Print the result (or the refusal) as JSON.")
@handle_errors
def pull_cmd(name: str, quant: str | None, force: bool, store_name: str | None, ctx: int | None,
             kv_type: str | None, device: str | None, keep_free: str | None, revision: str | None,
             expected: str | None, as_json: bool) -> None:
    """Download a GGUF model into the store: checked before, verified after.

    NAME is an alias (qwen3.5:2b, qwen3.5:2b-q4_k_s, gemma3:1b, llama3.2:3b-q4_k_m, smollm2:360m, ...),
    hf://owner/repo/file.gguf, or an https URL. Before any byte of the file is fetched: the size from the
    hub, free disk >= size + --keep-free, and the planner's RAM estimate at the configured context vs
    available RAM. The download resumes after an interruption (run the same command again), the sha256 is
    checked against the hub's, and only a verified file is registered.

    \b
    Examples:
      slmnode pull qwen3.5:2b                      # quant: the planner's pick, else Q4_K_M
      slmnode pull llama3.2:3b --quant Q4_K_S
      slmnode pull gemma3:1b --device pi4-4gb      # check the fit for another box
      slmnode pull hf://unsloth/gemma-3-1b-it-GGUF/gemma-3-1b-it-Q4_K_M.gguf
      slmnode pull qwen3.5:4b --ctx 16384 --json
    \b
    Exit codes: 0 pulled (or already present), 1 error, 3 refused by the disk or RAM check.
    Mirror or test hub: HF_ENDPOINT=http://host:port. Gated repos: HF_TOKEN.
    """
    settings = load_settings({"ctx": ctx, "kv_type": kv_type})
    mem = MemorySide.for_device(device)
    target = resolve_target(name, quant, revision=revision,
                            default_quant=make_quant_pick(mem, settings.ctx, settings.kv_type))
    quiet = as_json or not sys.stderr.isatty()
    if not as_json and target.quant_source != "given":
        why = target.quant_source
        if why == "fallback":
            why = ("default: this machine is not calibrated, so the planner cannot pick (`slmnode plan "
                   "--calibrate`, or --device NAME)" if mem.profile is None else "default: nothing fits in RAM")
        err_console.print(f"quant {target.quant}: {why}", highlight=False, markup=False)

    def free_disk(path: Any) -> int | None:
        return storage_facts(SysRoot("/"), path).free_bytes

    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        TimeRemainingColumn(), console=err_console, transient=True, disable=quiet)
    _RichBar.progress = progress
    try:
        with progress:
            result = pull(target, store=ModelStore(), force=force,
                          keep_free_bytes=parse_size(keep_free) if keep_free else DEFAULT_KEEP_FREE,
                          free_disk=free_disk, ram_check=make_ram_check(mem, settings.ctx, settings.kv_type),
                          expected_sha256=expected, name=store_name, progress=_RichBar,
                          notify=None if as_json else lambda m: err_console.print(m, highlight=False,
                                                                                  markup=False))
    except KeyboardInterrupt:
        err_console.print("interrupted: the partial download is kept; run the same command again to resume")
        sys.exit(130)
    except InsufficientResources as exc:
        if as_json:
            print_json({"error": exc.code, "message": exc.message,
                        "checks": [c.__dict__ for c in getattr(exc, "checks", [])]})
        else:
            failed = [c.name for c in getattr(exc, "checks", []) if not c.ok] or ["a"]
            err_console.print(f"[red]refused[/red] before downloading: {' and '.join(failed)} check failed "
                              "(numbers above); --force downloads anyway", highlight=False)
        sys.exit(EXIT_REFUSED)
    if as_json:
        print_json(result.to_dict())
        return
    how = "already present" if result.already_present else (
        f"{fmt_bytes(result.downloaded_bytes)} downloaded" + (f", resumed at {fmt_bytes(result.resumed_from)}"
                                                              if result.resumed_from else ""))
    verified = "verified" if result.sha256_verified else "NOT verified (no --sha256)"
    forced = "; FORCED past a failed check" if result.forced else ""
    console.print(f"pulled [bold]{escape(', '.join(result.names))}[/bold] ({fmt_bytes(result.size_bytes)}, quant "
                  f"{result.quant or '?'} ({escape(result.quant_source)}), sha256 {result.sha256[:12]} {verified}; "
                  f"{how}{forced})", highlight=False)
