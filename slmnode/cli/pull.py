"""``slmnode pull NAME``: fetch a model from the Hugging Face hub into the store, checked first.

The CLI layer is where the planner and the hardware probe meet the pull: it picks the default quant
(the planner's pick for the device, else Q4_K_M), builds the RAM-fit check (planner RAM estimate vs
available RAM) and the free-disk probe, and hands both to :func:`slmnode.catalog.pull.pull`.
"""

from __future__ import annotations

import dataclasses
import re
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

from slmnode.catalog.aliases import Alias, resolve_target
from slmnode.catalog.families import BY_KEY
from slmnode.catalog.pull import DEFAULT_KEEP_FREE, RamFit, RemoteFile, fmt_bytes, pull
from slmnode.catalog.quants import QUANTS, get_quant
from slmnode.catalog.store import ModelStore
from slmnode.cli.common import err_console, handle_errors, print_json
from slmnode.config import load_settings
from slmnode.errors import ConfigError, InsufficientResources
from slmnode.hardware.probe import probe as probe_hardware
from slmnode.hardware.root import SysRoot
from slmnode.hardware.storage import storage_facts
from slmnode.planner.calibrate import repack_types_for
from slmnode.planner.memory import MiB, estimate_ram
from slmnode.planner.model_facts import ModelFacts, facts_from_family
from slmnode.planner.plan import GOALS, plan_row, usable_ram
from slmnode.planner.profiles import DeviceProfile, GiB, get_profile, load_local_profile

console = Console()
EXIT_REFUSED = 3  # a pre-download check (disk or RAM) refused; --force overrides
PLANNER_QUANTS = ("Q4_K_M", "Q5_K_M", "Q8_0")  # what the planner's recommendation compares


def parse_size(text: str) -> int:
    """``"2G"``, ``"500M"``, ``"1.5GiB"``, ``"0"`` -> bytes (K/M/G/T are powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise ConfigError(f"invalid size {text!r}; e.g. 2G, 500M, 0")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " "))


class MemorySide:
    """RAM the model may use: this machine (MemAvailable + free swap) or a device profile."""

    def __init__(self, device: str | None) -> None:
        self.profile: DeviceProfile | None
        if device:
            self.profile = get_profile(device)
            self.available = usable_ram(self.profile)
            self.swap = 2 * GiB  # the planner's assumption for a profile
            self.where = f"device {self.profile.name} ({fmt_bytes(self.profile.ram_bytes)} - 1 GiB reserve)"
            self.repack = self.profile.repack_types
            self.available_for_planner: int | None = None
        else:
            hw = probe_hardware("/")
            self.profile = load_local_profile()  # None until `slmnode plan --calibrate` ran
            self.available = hw.memory.available_bytes or 0
            self.swap = hw.memory.swap_free_bytes or 0
            self.where = "this machine (MemAvailable)"
            self.repack = (self.profile.repack_types if self.profile
                           else repack_types_for(hw.cpu.arch or "", set(hw.cpu.flags), {}))
            self.available_for_planner = self.available

    def verdict(self, required: int) -> str:
        """The planner's rule: in RAM, only with swap, or not at all."""
        if required <= self.available:
            return "yes"
        return "swap" if required <= self.available + self.swap else "no"


def _facts(remote: RemoteFile) -> ModelFacts | None:
    family = BY_KEY.get(remote.family or "")
    quant = (remote.quant or "").upper()
    if family is None or quant not in QUANTS:
        return None
    facts = facts_from_family(family, get_quant(quant))
    return dataclasses.replace(facts, weight_bytes=remote.size_bytes)  # the hub's exact size


def make_ram_check(mem: MemorySide, ctx: int, kv_type: str) -> Any:
    def check(remote: RemoteFile) -> RamFit:
        facts = _facts(remote)
        if facts is None:  # unknown architecture: weights + runtime base is a lower bound
            required = remote.size_bytes + 24 * MiB
            return RamFit(required, mem.available, mem.verdict(required), ctx, mem.where,
                          "weights only: unknown architecture, a lower bound",
                          {"weights": remote.size_bytes, "runtime": 24 * MiB})
        est = estimate_ram(facts, ctx, kv_type=kv_type, repack_types=mem.repack)
        breakdown = {"weights": est.weights, "kv_cache": est.kv_cache, "compute": est.compute,
                     "runtime": est.runtime}
        if est.repacked:
            breakdown["repacked"] = est.repacked
        return RamFit(est.total, mem.available, mem.verdict(est.total), ctx, mem.where,
                      f"planner estimate for {facts.name}, kv {kv_type}", breakdown)

    return check


def make_quant_pick(mem: MemorySide, ctx: int, kv_type: str) -> Any:
    """The planner's quant for an alias on this device: the best of Q4_K_M/Q5_K_M/Q8_0 that fits in
    RAM and meets the chat floor (generation and prompt tok/s), else the fastest that fits."""

    def pick(alias: Alias) -> tuple[str, str] | None:
        family = BY_KEY.get(alias.family)
        if mem.profile is None or family is None:
            return None
        min_gen, min_pp, _ = GOALS["chat"]
        rows = [plan_row(facts_from_family(family, get_quant(q)), mem.profile, ctx=ctx, kv_type=kv_type,
                         available_bytes=mem.available_for_planner)
                for q in PLANNER_QUANTS if q in alias.quants]
        fitting = [r for r in rows if r.fits == "yes"]
        if not fitting:
            return None
        good = [r for r in fitting if r.gen_tps >= min_gen and r.prompt_tps >= min_pp]
        best = (max(good, key=lambda r: get_quant(r.quant).file_bpw) if good
                else max(fitting, key=lambda r: r.gen_tps))
        return best.quant, (f"planner for {mem.profile.name}: {best.gen_tps:.1f} tok/s predicted, "
                            f"{fmt_bytes(best.ram_bytes)} at ctx {ctx}")

    return pick


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
    mem = MemorySide(device)
    target = resolve_target(name, quant, revision=revision,
                            default_quant=make_quant_pick(mem, settings.ctx, settings.kv_type))
    quiet = as_json or not sys.stderr.isatty()
    if not as_json and target.quant_source != "given":
        why = target.quant_source
        if why == "fallback":
            why = ("default: this machine is not calibrated, so the planner cannot pick (`slmnode plan "
                   "--calibrate`, or --device NAME)" if mem.profile is None else "default: nothing fits in RAM")
        err_console.print(f"quant {target.quant}: {why}", highlight=False, markup=False)
    free_disk = lambda path: storage_facts(SysRoot("/"), path).free_bytes
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
