"""The router's settings: ``[[upstreams]]`` and ``[router]`` tables in the node's TOML file.

    [router]
    privacy = "local"              # PII/secrets found: "local" keeps the request here, "redact" masks and sends
    classifier = "rules"           # or "model": the local model settles what the rules can't
    unknown_task = "local"         # where a request no rule recognises goes
    overflow_to_cloud = true       # local queue full / too hot -> the default upstream (never with PII)
    fallback_to_local = true       # every upstream failed -> local, when the prompt fits the local context
    local_watts = 6.4              # power draw while generating (Raspberry Pi 4B under full load)
    usd_per_kwh = 0.30
    [[router.keys]]                # optional: more API keys, each with a name (ledger) and a route
    name = "ci-bot"
    key_env = "SLMNODE_KEY_CI_BOT"
    route = "local"

    [[upstreams]]                  # the first one is the default cloud route
    name = "flash-lite"
    base_url = "https://generativelanguage.googleapis.com/v1beta/openai"
    model = "gemini-3.1-flash-lite"
    api_key_env = "GEMINI_API_KEY"
    input_usd_per_mtok = 0.25
    output_usd_per_mtok = 1.50
    # api = "anthropic"            # an Anthropic Messages upstream (base_url = "https://api.anthropic.com/v1")

API keys are read from the named environment variables when a request is sent; they are never
stored in the config, the ledger or a log line.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slmnode.errors import ConfigError

Route = Literal["auto", "local", "cloud"]

#: Documented price points (USD per million tokens) for common cloud choices.
KNOWN_PRICES: dict[str, tuple[float, float]] = {
    "gemini-3.1-flash-lite": (0.25, 1.50),
    "gpt-4o-mini": (0.15, 0.60),
    "claude-haiku": (0.25, 1.25),
}
REFERENCE_MODEL = "gemini-3.1-flash-lite"


class Upstream(BaseModel):
    """One cloud endpoint: OpenAI-compatible (chat completions), or Anthropic Messages (``api = "anthropic"``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9._:-]+$")
    base_url: str = Field(..., description="up to and including /v1 (or the provider's OpenAI-compatible root)")
    model: str
    api_key_env: str | None = Field(None, description="environment variable that holds the API key")
    input_usd_per_mtok: float = Field(0.0, ge=0)
    output_usd_per_mtok: float = Field(0.0, ge=0)
    timeout: float = Field(60.0, gt=0, description="seconds to wait for the upstream (connect and between bytes)")
    api: Literal["openai", "anthropic"] = Field("openai", description="the upstream's wire format")

    @field_validator("base_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return v.rstrip("/")

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_usd_per_mtok + tokens_out * self.output_usd_per_mtok) / 1e6


class KeyRule(BaseModel):
    """An extra API key: its name (what the ledger shows) and the route it is pinned to."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1)
    key_env: str
    route: Route | str = "auto"

    def key(self) -> str | None:
        return os.environ.get(self.key_env) or None


class RouterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    privacy: Literal["local", "redact"] = "local"
    classifier: Literal["rules", "model"] = "rules"
    unknown_task: Literal["local", "cloud"] = "local"
    overflow_to_cloud: bool = True
    fallback_to_local: bool = True
    local_watts: float = Field(6.4, ge=0, description="W drawn while generating (Pi 4B under full load)")
    usd_per_kwh: float = Field(0.30, ge=0)
    reference_input_usd_per_mtok: float | None = Field(None, ge=0, description="default: the first upstream's, "
                                                       "else Gemini 3.1 Flash-Lite's")
    reference_output_usd_per_mtok: float | None = Field(None, ge=0)
    breaker_failures: int = Field(3, ge=1, description="consecutive failures that open an upstream's circuit")
    breaker_cooldown: float = Field(30.0, ge=0, description="seconds an open circuit skips the upstream")
    long_prompt_tokens: int = Field(6000, ge=1, description="prompts longer than this count as long reasoning")
    keys: list[KeyRule] = Field(default_factory=list)
    upstreams: list[Upstream] = Field(default_factory=list)

    def reference_prices(self) -> tuple[float, float]:
        if self.reference_input_usd_per_mtok is not None and self.reference_output_usd_per_mtok is not None:
            return self.reference_input_usd_per_mtok, self.reference_output_usd_per_mtok
        if self.upstreams:
            return self.upstreams[0].input_usd_per_mtok, self.upstreams[0].output_usd_per_mtok
        return KNOWN_PRICES[REFERENCE_MODEL]

    def reference_cost(self, tokens_in: int, tokens_out: int) -> float:
        pin, pout = self.reference_prices()
        return (tokens_in * pin + tokens_out * pout) / 1e6

    def local_cost(self, seconds: float) -> float:
        return self.local_watts * seconds / 3.6e6 * self.usd_per_kwh

    def upstream(self, name: str) -> Upstream | None:
        return next((u for u in self.upstreams if u.name == name), None)


def load_router_config(path: str | Path | None) -> RouterConfig:
    """Read ``[router]`` and ``[[upstreams]]`` from the node's TOML file (defaults if there is none)."""
    if path is None or not Path(path).is_file():
        return RouterConfig()
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    table = dict(data.get("router") or {})
    table["upstreams"] = data.get("upstreams") or []
    try:
        config = RouterConfig.model_validate(table)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid [router]/[[upstreams]] in {path}: {problems}") from exc
    names = [u.name for u in config.upstreams]
    if len(set(names)) != len(names):
        raise ConfigError(f"upstream names must be unique in {path}: {', '.join(names)}")
    reserved = {"auto", "local", "cloud"} & set(names)
    if reserved:
        raise ConfigError(f"upstream name(s) {', '.join(sorted(reserved))} are reserved for routes; rename them")
    for rule in config.keys:
        if rule.route not in ("auto", "local", "cloud") and config.upstream(rule.route) is None:
            raise ConfigError(f"key {rule.name!r} routes to {rule.route!r}, which is neither auto/local/cloud "
                              f"nor an upstream name ({', '.join(names) or 'none configured'})")
    return config
