"""``slmnode plan``: which model, quant and context this box (or a named device) should run."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from slmnode.catalog.embedded import GEMMA3
from slmnode.catalog.quants import get_quant
from slmnode.catalog.store import ModelStore
from slmnode.cli.common import err_console, handle_errors, print_json
from slmnode.cli.probe import probe_with_build
from slmnode.errors import ConfigError
from slmnode.planner.local import calibrate_local as calibrate_machine
from slmnode.planner.plan import GOALS, feasibility_matrix, model_plan, recommend
from slmnode.planner.profiles import LOCAL_NAMES, DeviceProfile, get_profile, load_local_profile
from slmnode.planner.target import facts_for

console = Console()
CALIBRATION_MODEL = GEMMA3
GiB = 1 << 30


def calibrate_local(threads: int | None = None) -> DeviceProfile:
    """Measure llama.cpp on this machine and cache the profile.

    It always measures the embedded Gemma 3 270M, not the default model: a fixed model keeps cached
    profiles comparable, and Gemma reads 246 MB of weights per token (its 262k-token output matrix), so
    a decode step is dominated by memory bandwidth as for the larger models people plan for, where
    SmolLM2 135M reads 94 MB and its per-token overheads weigh more.
    """
    from slmnode.engine.build_info import measure_throughput

    store = ModelStore()
    path = store.path_of(store.ensure_embedded(CALIBRATION_MODEL.name))
    profile, load = calibrate_machine(probe_with_build(), path, measure_throughput, threads)
    if load > profile.bw_saturation_threads:
        err_console.print(f"[yellow]warning:[/yellow] load average {load:.1f} > {profile.bw_saturation_threads} "
                          "threads while calibrating: other work slowed the measurement; re-run when idle")
    return profile


def _profile(device: str | None, calibrate: bool, threads: int | None) -> DeviceProfile:
    if calibrate:
        return calibrate_local(threads)
    name = device or "local"
    if name.lower() in LOCAL_NAMES and load_local_profile() is None:
        err_console.print("this machine is not calibrated yet: measuring llama.cpp for a few seconds"
                          " (cached; `--device NAME` plans for another box)")
        return calibrate_local(threads)
    return get_profile(name)


def _fmt_tps(v: float) -> str:
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


@click.command()
@click.option("--device", "-d", help="Device profile (pi4-8gb, pi4-4gb, pi5-8gb, n100-16gb) or 'local' (default).")
@click.option("--calibrate", is_flag=True, help="Measure this machine now (seconds) and cache it.")
@click.option("--model", "-m", help="Plan one model: catalog name, store name or path to a .gguf.")
@click.option("--quant", "-q", help="Quant type for a catalog model (default Q4_K_M).")
@click.option("--quants", default="Q4_K_M,Q8_0", show_default=True, help="Quants in the matrix.")
@click.option("--ctx", "-c", type=int, help="Context size in tokens (default: the goal's).")
@click.option("--threads", "-t", type=int, help="Threads (default: all cores of the device).")
@click.option("--kv-type", type=click.Choice(["f16", "q8_0", "q4_0"]), default="f16", show_default=True)
@click.option("--goal", type=click.Choice(list(GOALS)), default="chat", show_default=True,
              help="What the node is for: router (short, fast), chat, agent (long prompts).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def plan(device: str | None, calibrate: bool, model: str | None, quant: str | None, quants: str,
         ctx: int | None, threads: int | None, kv_type: str, goal: str, as_json: bool) -> None:
    """Predict RAM and speed of models on a device and recommend one for a goal.

    \b
    Examples:
      slmnode plan                                   # this machine (calibrates once)
      slmnode plan --device pi4-8gb --goal agent
      slmnode plan --device pi4-8gb --model qwen2.5-0.5b-instruct --quant Q4_K_M --ctx 4096 --json
      slmnode plan --model ./my-model.gguf --ctx 8192
      slmnode plan --calibrate                       # re-measure this machine
    """
    profile = _profile(device, calibrate, threads)
    local = profile.name == "local"
    available = probe_with_build().memory.available_bytes if local else None
    if model is not None:
        if quant is not None:
            get_quant(quant)
        facts, instruct = facts_for(model, quant)
        out = model_plan(facts, profile, ctx=ctx or 4096, threads=threads, kv_type=kv_type, instruct=instruct,
                         available_bytes=available)
        if as_json:
            print_json(out)
            return
        for k, v in out.items():
            console.print(f"{k:>17}: {v}")
        return
    qs = tuple(get_quant(q).name for q in quants.split(",") if q.strip())
    if not qs:
        raise ConfigError("--quants is empty; e.g. --quants Q4_K_M,Q8_0")
    c = ctx or GOALS[goal][2]
    rows = feasibility_matrix(profile, ctx=c, quants=qs, threads=threads, kv_type=kv_type,
                              available_bytes=available)
    rec = recommend(profile, goal, threads=threads, kv_type=kv_type, available_bytes=available)
    if as_json:
        print_json({"device": profile.to_dict(), "ctx": c, "rows": [r.to_dict() for r in rows],
                    "recommendation": rec.to_dict()})
        return
    table = Table(title=f"{profile.name}: {profile.description}")
    table.add_column("MODEL", no_wrap=True)
    for col in ("QUANT", f"RAM@{c}", "PROMPT t/s", "GEN t/s", "FITS", "AGENT"):
        table.add_column(col, no_wrap=col != "GEN t/s")
    for r in rows:
        fits = {"yes": "[green]yes[/green]", "swap": "[yellow]needs swap[/yellow]",
                "no": "[red]no[/red]"}[r.fits]
        gen = _fmt_tps(r.gen_tps) + ("" if r.interactive else " [red]non-interactive[/red]")
        table.add_row(r.model, r.quant, f"{r.ram_bytes / GiB:.2f} GiB", _fmt_tps(r.prompt_tps), gen,
                      fits, r.agent)
    console.print(table)
    console.print(f"[bold]recommended for {goal}:[/bold] {rec.model} {rec.quant}, --ctx {rec.ctx}, "
                  f"--threads {rec.threads}  ({rec.reason})")
    console.print(f"[dim]profile sources: {profile.sources}[/dim]")
