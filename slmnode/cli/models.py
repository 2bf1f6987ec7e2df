"""``slmnode models list | show | import | rm``."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from slmnode.catalog.model_info import model_info
from slmnode.catalog.store import ModelStore
from slmnode.cli.common import handle_errors, print_json

console = Console()


@click.group()
def models() -> None:
    """Manage the models in the store ($SLMNODE_HOME/models).

    \b
    Examples:
      slmnode models list
      slmnode models show gemma3:270m --template
      slmnode models import ./qwen2.5-0.5b-instruct-q4_k_m.gguf --name qwen2.5:0.5b
      slmnode models rm qwen2.5:0.5b
    """


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def list_models(as_json: bool) -> None:
    """List the models in the store (the embedded models are placed on first use).

    \b
    Examples:
      slmnode models list
      slmnode models list --json | jq -r '.[].name'
    """
    store = ModelStore()
    store.ensure_embedded()
    items = store.list()
    if as_json:
        print_json([m.to_dict() for m in items])
        return
    table = Table("NAME", "QUANT", "PARAMS", "SIZE", "SOURCE", "ADDED")
    table.columns[4].overflow = "fold"
    for m in items:
        name = f"{m.name} (stand-in)" if m.standin else m.name
        table.add_row(name, str(m.info.get("quant_type")), f"{m.info.get('parameter_count', 0) / 1e6:.0f}M",
                      f"{m.size_bytes / 2**20:.0f} MiB", m.source, time.strftime("%Y-%m-%d %H:%M", time.localtime(m.added_at)))
    console.print(table)


@models.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--template", is_flag=True, help="Also print the chat template.")
@handle_errors
def show(name: str, as_json: bool, template: bool) -> None:
    """Show a model's GGUF metadata: NAME in the store, or a path to a .gguf.

    \b
    Examples:
      slmnode models show default
      slmnode models show ./my-model.gguf --template     # also its chat template
      slmnode models show gemma3:270m --json | jq .context_length
    """
    path = Path(name)
    if path.suffix == ".gguf" and path.exists():
        info = model_info(path)
        header = {"name": path.stem, "path": str(path)}
    else:
        store = ModelStore()
        manifest = store.get(name)
        info = model_info(store.path_of(manifest))
        header = {"name": manifest.name, "sha256": manifest.sha256, "source": manifest.source}
    data = {**header, **info.to_dict(with_template=template)}
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        table.add_row(f"[bold]{key}[/bold]", str(value))
    console.print(table)


@models.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Name in the store (default: the file name without .gguf).")
@click.option("--sha256", "expected", help="Refuse the file unless its sha256 is this.")
@handle_errors
def import_model(path: Path, name: str | None, expected: str | None) -> None:
    """Copy a local GGUF file into the store (verified, atomic).

    \b
    Examples:
      slmnode models import ./qwen2.5-0.5b-instruct-q4_k_m.gguf
      slmnode models import ./model.gguf --name mymodel:1b --sha256 <64 hex digits>
    """
    store = ModelStore()
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"importing {path.name}", total=path.stat().st_size)
        manifest = store.add_file(path, name or path.stem, source=f"file:{path.resolve()}", expected_sha256=expected,
                                  progress=lambda n: progress.advance(task, n))
    console.print(f"imported [bold]{manifest.name}[/bold] ({manifest.size_bytes / 2**20:.0f} MiB, sha256 {manifest.sha256[:12]})")


@models.command("rm")
@click.argument("name")
@handle_errors
def remove(name: str) -> None:
    """Remove a model from the store (its file is deleted when no other name uses it).

    \b
    Examples:
      slmnode models rm qwen3.5:2b-q4_k_m
      slmnode models list && slmnode models rm NAME       # free disk space
    """
    manifest = ModelStore().remove(name)
    console.print(f"removed {manifest.name}")


from slmnode.cli.standin import standin as _standin  # noqa: E402  (its own module; registered here)

models.add_command(_standin)
