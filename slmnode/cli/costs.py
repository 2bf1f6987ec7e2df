"""``slmnode costs``: what the requests cost, per day and per API key, and what running locally saved."""

from __future__ import annotations

import re
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from slmnode.cli.common import handle_errors, print_json
from slmnode.config import home_dir
from slmnode.errors import ConfigError
from slmnode.router.ledger import Ledger

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str | None) -> float | None:
    """``7d``, ``12h``, ``30m``, ``2w`` -> a UNIX time that long ago (``None``: everything)."""
    if not text:
        return None
    m = re.fullmatch(r"(\d+)\s*([mhdw])", text.strip().lower())
    if not m:
        raise ConfigError(f"--since {text!r}: use a number and a unit, e.g. 30m, 12h, 7d or 2w")
    return time.time() - int(m.group(1)) * _UNITS[m.group(2)]


def costs_report(ledger: Ledger, since: float | None = None) -> dict[str, Any]:
    """Totals per day, per API key and per route, plus the grand total (all in USD)."""
    by_day = ledger.totals("day", since)
    total: dict[str, Any] = {"requests": 0, "local": 0, "cloud": 0, "errors": 0, "tokens_in": 0, "tokens_out": 0,
                             "cost_usd": 0.0, "reference_usd": 0.0, "saved_usd": 0.0}
    for row in by_day:
        for k in total:
            total[k] += row[k]
    total = {k: round(v, 6) if isinstance(v, float) else v for k, v in total.items()}
    return {"ledger": str(ledger.path), "total": total, "by_day": by_day, "by_api_key": ledger.totals("api_key", since),
            "by_route": ledger.totals("route", since)}


def _table(title: str, key: str, rows: list[dict[str, Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for col in (key, "requests", "local", "cloud", "errors", "tokens in", "tokens out", "cost $", "reference $",
                "saved $"):
        t.add_column(col, justify="left" if col == key else "right")
    for r in rows:
        t.add_row(str(r[key]), str(r["requests"]), str(r["local"]), str(r["cloud"]), str(r["errors"]),
                  f"{r['tokens_in']:,}", f"{r['tokens_out']:,}", f"{r['cost_usd']:.4f}", f"{r['reference_usd']:.4f}",
                  f"{r['saved_usd']:.4f}")
    return t


@click.command()
@click.option("--since", help="Only requests this recent: 30m, 12h, 7d, 2w (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def costs(since: str | None, as_json: bool) -> None:
    """Cost and savings from the router's ledger ($SLMNODE_HOME/ledger.db).

    Every /v1/chat/completions request leaves a row: where it ran, why, tokens, latency, its cost
    (cloud: the upstream's prices; local: watts x seconds x price per kWh) and what the same
    tokens would have cost on the reference cloud model. "saved" = reference - cost.

    \b
    Examples:
      slmnode costs                 totals per day, per API key and per route
      slmnode costs --since 7d
      slmnode costs --json | jq .total.saved_usd
    """
    path = home_dir() / "ledger.db"
    if not path.exists():
        raise ConfigError(f"no ledger yet at {path}: serve some requests with `slmnode serve` first")
    ledger = Ledger(path)
    try:
        report = costs_report(ledger, parse_since(since))
    finally:
        ledger.close()
    if as_json:
        print_json(report)
        return
    out = Console()
    out.print(_table("per day (UTC)", "day", report["by_day"]))
    out.print(_table("per API key", "api_key", report["by_api_key"]))
    out.print(_table("per route", "route", report["by_route"]))
    t = report["total"]
    out.print(f"total: {t['requests']} requests ({t['local']} local, {t['cloud']} cloud, {t['errors']} errors), "
              f"cost ${t['cost_usd']:.4f}, the reference cloud model would have cost ${t['reference_usd']:.4f}: "
              f"saved ${t['saved_usd']:.4f}", highlight=False)
