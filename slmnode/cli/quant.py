"""`slmnode quant`: quantize a model, unpack one to F16, compare quants on this box."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from slmnode.catalog.store import ModelStore
from slmnode.cli.common import err_console, handle_errors, print_json
from slmnode.errors import ModelFormatError


def resolve_model(ref: str) -> Path:
    """A path to a .gguf, or a model name in the store."""
    p = Path(ref).expanduser()
    if p.is_file():
        return p
    if ref.endswith(".gguf"):
        raise ModelFormatError(f"no such file: {ref}")
    store = ModelStore()
    return store.path_of(store.get(ref))


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=False)


class _QuantGroup(click.Group):
    """`slmnode quant MODEL --to ...` runs the hidden `make` command; other words are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["make", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_QuantGroup)
def quant() -> None:
    """Quantize a model and compare quants on your own box.

    \b
    Examples:
      slmnode quant model-F16.gguf --to Q4_0,Q4_K_S,Q4_K_M,Q8_0
      slmnode quant gemma3:270m-pt-q4_k_m --to Q8_0 --allow-requantize   # from the embedded Gemma Q4_K_M
      slmnode quant dequantize gemma3:270m-pt-q4_k_m -o gemma3-270m-F16.gguf
      slmnode quant compare gemma3-270m-F16.gguf gemma3-270m-Q8_0.gguf gemma3-270m-Q4_0.gguf --plot quants.png

    MODEL is a path to a .gguf or a model name in the store.
    """


@quant.command("make", hidden=True)
@click.argument("model")
@click.option("--to", "to", required=True, help="Comma-separated quant types, e.g. Q4_0,Q4_K_S,Q4_K_M,Q8_0.")
@click.option("--out-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Directory for the outputs (named BASE-TYPE.gguf).")
@click.option("--allow-requantize", is_flag=True, help="Quantize from an already quantized model (quality bounded by it).")
@click.option("--threads", "-t", type=int, default=0, help="Quantizer threads (0 = all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print the written files as JSON.")
@handle_errors
def make_cmd(model: str, to: str, out_dir: Path, allow_requantize: bool, threads: int, as_json: bool) -> None:
    """Write MODEL quantized to each type in --to, through llama.cpp's quantizer."""
    from slmnode.lab.produce import plan_quantize, run_jobs

    src = resolve_model(model)
    jobs, warning = plan_quantize(src, to.split(","), out_dir, allow_requantize=allow_requantize)
    if warning:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    with _progress() as bar:
        task = bar.add_task(f"quantizing {src.name}", total=len(jobs))
        paths = run_jobs(src, jobs, allow_requantize=allow_requantize, threads=threads,
                         on_done=lambda j: bar.update(task, advance=1, description=f"wrote {j.out.name}"))
    rows: list[dict[str, Any]] = [{"quant": j.quant, "path": str(p), "size_bytes": p.stat().st_size} for j, p in zip(jobs, paths)]
    if as_json:
        print_json({"source": str(src), "requantized": warning is not None, "outputs": rows})
        return
    for r in rows:
        click.echo(f"{r['quant']:8} {r['size_bytes'] / 1e6:8.1f} MB  {r['path']}")


@quant.command("dequantize")
@click.argument("model")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, help="F16 GGUF to write.")
@handle_errors
def dequantize_cmd(model: str, output: Path) -> None:
    """Write an F16 GGUF unpacked from a quantized MODEL (a reference for `quant compare`).

    \b
    The result holds exactly the information of the source: quality measured against it
    is quality relative to the source, not to the original full-precision model.

    \b
    Examples:
      slmnode quant dequantize gemma3:270m-pt-q4_k_m -o gemma3-270m-F16.gguf
      slmnode quant dequantize ./model-Q8_0.gguf -o model-F16.gguf
    """
    from slmnode.lab.dequantize import dequantize_gguf

    src = resolve_model(model)
    with _progress() as bar:
        task = bar.add_task(f"unpacking {src.name}", total=src.stat().st_size)
        dequantize_gguf(src, output, progress=lambda done, total: bar.update(task, completed=done, total=total))
    click.echo(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB)")


class _BarProgress:
    def __init__(self, bar: Progress) -> None:
        self.bar, self.task = bar, bar.add_task("scoring", total=None)

    def start(self, total: int) -> None:
        self.bar.update(self.task, total=total)

    def step(self, description: str) -> None:
        self.bar.update(self.task, advance=1, description=description)


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _table(d: dict[str, Any]) -> Table:
    t = Table(title=f"{d['corpus']} · ctx {d['ctx']} · {d['n_chunks']} chunks · {d['scored_tokens']} scored tokens"
                    f" · {d['threads']} threads")
    for col in ("model", "type", "size MB", "bpw", "RAM MB", "PPL", "KLD mean", "KLD p99", "top-1", "pp tok/s", "tg tok/s"):
        t.add_column(col, justify="left" if col in ("model", "type") else "right")
    for r in d["rows"]:
        t.add_row(r["label"] + (" (ref)" if r["is_reference"] else ""), r["quant_type"] or "?",
                  f"{r['size_bytes'] / 1e6:.1f}", f"{r['bits_per_weight']:.2f}", f"{r['ram_bytes'] / 2**20:.0f}",
                  f"{_fmt(r['perplexity'], '.3f')} ±{_fmt(r['perplexity_error'], '.2f')}",
                  _fmt(r["kld_mean"], ".4f"), _fmt(r["kld_p99"], ".3f"), _fmt(r["top1_agreement"], ".1%"),
                  _fmt(r["prompt_tps"], ".0f"), _fmt(r["generation_tps"], ".1f"))
    return t


@quant.command("compare")
@click.argument("reference")
@click.argument("models", nargs=-1)
@click.option("--corpus", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="UTF-8 text to score (default: Alice in Wonderland, shipped, public domain).")
@click.option("--ctx", type=int, default=512, show_default=True, help="Context per chunk (second half is scored).")
@click.option("--chunks", type=int, help="Score at most this many chunks (default: all the corpus holds).")
@click.option("--threads", "-t", type=int, help="CPU threads (default: all cores).")
@click.option("--batch", type=int, default=64, show_default=True, help="Positions per decode: logits memory is BATCH MiB per model (262k vocab).")
@click.option("--no-speed", is_flag=True, help="Skip the prompt/generation speed test.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a quality-vs-speed PNG here.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def compare_cmd(reference: str, models: tuple[str, ...], corpus: Path | None, ctx: int, chunks: int | None,
                threads: int | None, batch: int, no_speed: bool, plot: Path | None, as_json: bool) -> None:
    """Score MODELS against REFERENCE: size, bits/weight, RAM, perplexity, KL divergence, speed.

    \b
    REFERENCE is the best file you have (F16/F32; `quant dequantize` makes one).
    KL divergence is KL(reference || model) per token, nats; top-1 = same most likely token.
    Perplexity is computed like llama.cpp's llama-perplexity (same chunks, same scored half).

    \b
    Examples:
      slmnode quant compare m-F16.gguf m-Q8_0.gguf m-Q4_K_M.gguf m-Q4_0.gguf --chunks 20 --plot q.png
    """
    from slmnode.lab.chart import plot_compare
    from slmnode.lab.compare import compare_quants
    from slmnode.lab.corpus import load_corpus

    label, text = load_corpus(corpus)
    ref = resolve_model(reference)
    paths: list[str | Path] = [resolve_model(m) for m in models]
    with _progress() as bar:
        report = compare_quants(ref, paths, text=text, corpus_label=label, ctx=ctx, max_chunks=chunks,
                                threads=threads, n_batch=batch, speed=not no_speed, progress=_BarProgress(bar))
    if plot is not None:
        plot_compare(report, plot)
    d = report.to_dict()
    if as_json:
        print_json(d)
        return
    out = Console(soft_wrap=True)
    if not out.is_terminal:
        out = Console(soft_wrap=True, width=150)
    out.print(_table(d))
    for r in d["rows"]:
        out.print(f"[bold]{r['label']}[/bold]: {r['verdict']}", highlight=False)
    out.print(f"[green]advice:[/green] {d['advice']}", highlight=False)
    if plot is not None:
        out.print(f"chart: {plot}")
