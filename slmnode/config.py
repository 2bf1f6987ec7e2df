"""Settings: CLI flags > SLMNODE_* environment variables > TOML file > defaults.

The TOML file is ``--config FILE`` or ``$SLMNODE_HOME/config.toml``; keys are the field names of
:class:`Settings` at top level (``port = 8080``, ``ctx = 4096``, ``kv_type = "q8_0"``).
Environment variables are the upper-cased field names with an ``SLMNODE_`` prefix
(``SLMNODE_PORT=9000``). ``SLMNODE_HOME`` (default: the platform's user data dir) holds the model
store, the config file and the databases.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slmnode.errors import ConfigError

KVType = Literal["f16", "q8_0", "q4_0"]
KVLayout = Literal["auto", "unified", "split"]
ChatFormat = Literal["auto", "template", "gemma", "chatml", "llama3", "phi3", "plain"]


def home_dir() -> Path:
    """The slmnode home: ``$SLMNODE_HOME`` or the platform's user data dir."""
    env = os.environ.get("SLMNODE_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("slmnode"))


class Settings(BaseModel):
    """Everything the node can be told. ``None`` means "decide from the machine/model"."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    api_key: str | None = None
    model: str | None = Field(None, description="model name in the store, or a path to a .gguf")
    threads: int | None = Field(None, ge=1, le=512)
    ctx: int = Field(4096, ge=64, le=1_048_576)
    batch: int = Field(512, ge=1, le=65536)
    ubatch: int = Field(512, ge=1, le=65536)
    mmap: bool = True
    mlock: bool = False
    kv_type: KVType = "f16"
    flash_attn: bool | None = Field(None, description="flash attention; unset = llama.cpp's auto (on for CPU)")
    parallel: int = Field(4, ge=1, le=64, description="sequences decoded together (continuous batching slots)")
    kv_layout: KVLayout = Field("unified", description="unified: one KV cache shared by all sequences; split: "
                                "each sequence its own ctx cells (no attention over idle cached prefixes, "
                                "parallel x the KV RAM); auto: split when the extra KV is at most 5% of RAM")
    cache_ram: int | None = Field(None, ge=0, le=1_048_576, description="MiB of host RAM for parked prompt caches "
                                  "(idle sequences copied out of the KV cache, restored when a prompt matches); "
                                  "0 = off; unset = 512, at most a tenth of the machine's RAM")
    chat_format: ChatFormat = "auto"
    keep_alive: str = Field("5m", description="unload a non-default model idle this long (300, 5m, 1h; -1 = never)")
    max_loaded_models: int = Field(1, ge=1, le=16)
    # staying up (supervisor)
    max_queue: int = Field(32, ge=0, le=100_000, description="requests that may wait; past it 503 + Retry-After")
    request_timeout: float = Field(600.0, ge=0, description="seconds per request (0 = no limit)")
    hang_timeout: float = Field(30.0, gt=0, description="seconds without heartbeat/progress before a restart")
    canary_interval: float = Field(120.0, ge=0, description="seconds between idle canary generations (0 = off)")
    memory_check: bool = True
    hardware_root: str = Field("/", description="where /proc and /sys are read (tests point it at a capture)")
    thermal_soft: float = 75.0
    thermal_hard: float = 82.0
    thermal_interval: float = Field(5.0, gt=0)
    telegram_token: str | None = None
    telegram_chat_id: str | None = None
    telegram_base_url: str = "https://api.telegram.org"
    uptime_kuma_url: str | None = None
    log_prompts: bool = False
    config_path: str | None = Field(None, description="the TOML file these settings came from (set by the loader)")


_FIELDS = set(Settings.model_fields)


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FIELDS:
        value = environ.get(f"SLMNODE_{name.upper()}")
        if value is not None and value != "":
            out[name] = value
    return out


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    # Tables (e.g. [[upstreams]]) belong to other parts; keep only the node's own keys here.
    unknown = [k for k, v in data.items() if k not in _FIELDS and not isinstance(v, (dict, list))]
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {path}: {', '.join(sorted(unknown))}; "
            f"known keys: {', '.join(sorted(_FIELDS))}"
        )
    return {k: v for k, v in data.items() if k in _FIELDS}


def load_settings(
    cli: dict[str, Any] | None = None,
    *,
    config_file: Path | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Merge the three sources. ``cli`` entries that are ``None`` are treated as not given."""
    environ = dict(os.environ) if environ is None else environ
    merged: dict[str, Any] = {}
    path = config_file or home_dir() / "config.toml"
    if config_file is not None or path.exists():
        merged.update(_from_toml(path))
        merged["config_path"] = str(path)
    merged.update(_from_env(environ))
    merged.update({k: v for k, v in (cli or {}).items() if v is not None})
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
