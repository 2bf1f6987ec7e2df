"""Shared CLI pieces: engine/settings options, error reporting, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from slmnode.config import Settings, load_settings
from slmnode.errors import SlmnodeError

F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True, soft_wrap=True)


def engine_options(fn: F) -> F:
    """Options that decide how the model runs (flags > SLMNODE_* env > TOML > defaults)."""
    opts = [
        click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="TOML settings file (default: $SLMNODE_HOME/config.toml if present)."),
        click.option("--model", "-m", help="Model name in the store, or a path to a .gguf (default: the embedded SmolLM2 135M Instruct; 'gemma3:270m-pt-q4_k_m' is the other embedded model)."),
        click.option("--threads", "-t", type=int, help="CPU threads (default: one per physical core)."),
        click.option("--ctx", "-c", type=int, help="Context size in tokens (default 4096)."),
        click.option("--batch", type=int, help="Prompt batch size (default 512)."),
        click.option("--kv-type", type=click.Choice(["f16", "q8_0", "q4_0"]), help="KV cache type (default f16; q8_0 halves its RAM)."),
        click.option("--mlock/--no-mlock", default=None, help="Lock the model in RAM (needs a high memlock limit)."),
        click.option("--mmap/--no-mmap", default=None, help="Memory-map the model file (default on)."),
        click.option("--flash-attn/--no-flash-attn", default=None, help="Flash attention (default: llama.cpp's auto, which is on for CPU; measured 7% faster generation here)."),
        click.option("--parallel", type=int, help="Requests decoded together in one batch (default 4)."),
        click.option("--kv-layout", type=click.Choice(["auto", "unified", "split"]),
                     help="KV cache: one shared by all requests (unified, default) or one context per request "
                          "(split: no attention over idle cached prompts, parallel x the KV RAM); auto = split "
                          "when that costs <= 5% of RAM. See docs/engine.md for measurements."),
        click.option("--cache-ram", type=int,
                     help="MiB of host RAM for parked prompt caches (default 512, at most a tenth of RAM; 0 = off): idle requests' "
                          "cached prompts leave the KV cache while others decode and come back when a prompt "
                          "matches, as llama-server's --cache-ram."),
        click.option("--chat-format", type=click.Choice(["auto", "template", "gemma", "chatml", "llama3", "phi3", "plain"]),
                     help="Prompt format: auto = the GGUF's template, else its family's turn format; "
                          "'plain' (User:/Assistant: transcript) suits base models such as the embedded Gemma 3 270M."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def settings_from(kwargs: dict[str, Any]) -> Settings:
    config_file = kwargs.pop("config_file", None)
    cli = {"model": kwargs.pop("model", None), "threads": kwargs.pop("threads", None),
           "ctx": kwargs.pop("ctx", None), "batch": kwargs.pop("batch", None),
           "kv_type": kwargs.pop("kv_type", None), "mlock": kwargs.pop("mlock", None),
           "mmap": kwargs.pop("mmap", None), "flash_attn": kwargs.pop("flash_attn", None),
           "parallel": kwargs.pop("parallel", None), "kv_layout": kwargs.pop("kv_layout", None),
           "cache_ram": kwargs.pop("cache_ram", None), "chat_format": kwargs.pop("chat_format", None)}
    cli.update({k: kwargs.pop(k) for k in ("host", "port", "api_key", "keep_alive", "max_loaded_models", "max_queue",
                                           "request_timeout") if k in kwargs})
    return load_settings(cli, config_file=config_file)


def handle_errors(fn: F) -> F:
    """Turn slmnode errors into one red line and exit code 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SlmnodeError as exc:
            err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))
