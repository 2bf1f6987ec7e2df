"""``slmnode models standin NAME``: a random-weight stand-in of a catalog model, in the store."""

from __future__ import annotations

import click
from rich.console import Console

from slmnode.catalog.resolve import resolve_family
from slmnode.catalog.standin import standin_name, tmp_path_beside, write_standin
from slmnode.catalog.store import Manifest, ModelStore
from slmnode.cli.common import handle_errors, print_json
from slmnode.engine.quantize import normalize_quant, quantize_gguf

console = Console()


def build_standin(name: str, *, quant: str = "Q4_K_M", tiny: bool = False, seed: int = 0,
                  store: ModelStore | None = None) -> Manifest:
    """Write ``name``'s stand-in (F16, then quantized by llama.cpp unless F16/F32) and register it as
    ``NAME-standin`` (``NAME-standin-tiny``)."""
    family = resolve_family(name)
    key = normalize_quant(quant)
    store = store or ModelStore()
    f16 = tmp_path_beside(store.blobs, "f16")
    out = f16
    try:
        write_standin(family, f16, seed=seed, tiny=tiny)
        if key not in ("F16", "F32"):
            out = quantize_gguf(f16, tmp_path_beside(store.blobs, key.lower()), key)
            f16.unlink()
        source = f"standin:{family.key} quant={key} seed={seed}{' tiny' if tiny else ''}"
        return store.add_file(out, standin_name(name, tiny), source=source, move=True, standin=True)
    finally:
        f16.unlink(missing_ok=True)
        out.unlink(missing_ok=True)


@click.command("standin")
@click.argument("name")
@click.option("--quant", default="Q4_K_M", show_default=True, help="llama.cpp quant type (F16/F32: not quantized).")
@click.option("--tiny", is_flag=True, help="Same architecture, small dimensions (NAME-standin-tiny), for fast tests.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed of the random weights.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@handle_errors
def standin(name: str, quant: str, tiny: bool, seed: int, as_json: bool) -> None:
    """Write a stand-in of catalog model NAME: random (seeded) weights with its exact architecture,
    hyperparameters and vocabulary size; registered as NAME-standin. Its output is noise: use it to
    measure memory and speed, or to test the engine, before downloading the real weights.

    \b
    Examples:
      slmnode models standin llama3.2:1b                 # -> llama3.2:1b-standin (Q4_K_M)
      slmnode models standin gemma3:1b --tiny --quant F16 # -> gemma3:1b-standin-tiny
    """
    manifest = build_standin(name, quant=quant, tiny=tiny, seed=seed)
    if as_json:
        print_json(manifest.to_dict())
        return
    console.print(f"wrote [bold]{manifest.name}[/bold] (stand-in, random weights; "
                  f"{manifest.size_bytes / 2**20:.0f} MiB, {manifest.info.get('quant_type')})")
