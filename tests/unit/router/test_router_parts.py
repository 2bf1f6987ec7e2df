"""Router parts: config loading, the classifier's rules, the circuit breaker, the ledger and `slmnode costs`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from slmnode.cli import main
from slmnode.config import load_settings
from slmnode.errors import ConfigError
from slmnode.router.breaker import Circuit, CircuitBreaker
from slmnode.router.classify import classify
from slmnode.router.config import KNOWN_PRICES, load_router_config
from slmnode.router.ledger import Ledger, LedgerRow

GOOD = """
port = 9000
[router]
privacy = "redact"
[[router.keys]]
name = "ci"
key_env = "CI_KEY"
route = "flash"
[[upstreams]]
name = "flash"
base_url = "https://generativelanguage.googleapis.com/v1beta/openai/"
model = "gemini-3.1-flash-lite"
api_key_env = "GEMINI_API_KEY"
input_usd_per_mtok = 0.25
output_usd_per_mtok = 1.50
[[upstreams]]
name = "mini"
base_url = "https://api.openai.com/v1"
model = "gpt-4o-mini"
api_key_env = "OPENAI_API_KEY"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
"""


def test_config_reads_upstreams_and_router_beside_node_settings(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "node.toml"
    f.write_text(GOOD)
    settings = load_settings(config_file=f)
    assert settings.port == 9000 and settings.config_path == str(f)
    cfg = load_router_config(settings.config_path)
    assert [u.name for u in cfg.upstreams] == ["flash", "mini"] and cfg.privacy == "redact"
    assert cfg.upstreams[0].base_url.endswith("/openai")  # trailing slash dropped
    assert cfg.reference_prices() == (0.25, 1.50)  # the first upstream is the reference
    monkeypatch.setenv("GEMINI_API_KEY", "g-key")
    assert cfg.upstreams[0].api_key() == "g-key" and cfg.upstreams[1].api_key() is None
    assert "g-key" not in f.read_text()
    assert load_router_config(None).reference_prices() == KNOWN_PRICES["gemini-3.1-flash-lite"]


@pytest.mark.parametrize(("toml", "message"), [
    ('[[upstreams]]\nname = "a"\nbase_url = "ftp://x"\nmodel = "m"\n', "base_url must start with http"),
    ('[[upstreams]]\nname = "auto"\nbase_url = "http://x"\nmodel = "m"\n', "reserved"),
    ('[[upstreams]]\nname = "a"\nbase_url = "http://x"\nmodel = "m"\n' * 2, "unique"),
    ('[[upstreams]]\nname = "a"\nbase_url = "http://x"\nmodel = "m"\napi_key = "sk-1"\n', "api_key"),
    ('[router]\nprivacy = "yolo"\n', "privacy"),
    ('[[router.keys]]\nname = "k"\nkey_env = "K"\nroute = "nowhere"\n', "neither auto/local/cloud"),
])
def test_bad_router_config_names_the_problem(tmp_path: Path, toml: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_router_config(f)


@pytest.mark.parametrize(("messages", "extra", "task"), [
    ([{"role": "user", "content": "Is this email spam? 'WIN A FREE CRUISE'"}], {}, "classification"),
    ([{"role": "system", "content": "You label support tickets."},
      {"role": "user", "content": "My order never arrived"}], {}, "classification"),
    ([{"role": "user", "content": "List all the dates in this text: ..."}], {}, "extraction"),
    ([{"role": "user", "content": "Here is a contract."}],
     {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object", "properties": {
         "party": {"type": "string"}}}}}}, "extraction"),
    ([{"role": "user", "content": "Is it urgent?"}],
     {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object", "properties": {
         "urgency": {"enum": ["low", "high"]}}}}}}, "classification"),
    ([{"role": "user", "content": "tl;dr of the thread below please"}], {}, "summarization"),
    ([{"role": "user", "content": "Fix the spelling in: 'recieve teh package'"}], {}, "formatting"),
    ([{"role": "user", "content": "What's the weather?"}], {"tools": [{"type": "function", "function": {
        "name": "weather", "parameters": {"type": "object"}}}]}, "routing"),
    ([{"role": "user", "content": "Traceback (most recent call last):\n  File 'x.py'\nKeyError: 'a'"}], {}, "code"),
    ([{"role": "user", "content": "Refactor this module to use async IO"}], {}, "code"),
    ([{"role": "user", "content": "Compose a limerick about a cat"}], {}, "creative"),
    ([{"role": "user", "content": "Brainstorm ten names for a bakery"}], {}, "creative"),
    ([{"role": "user", "content": "Draft a detailed plan to migrate our database with zero downtime"}], {}, "reasoning"),
    ([{"role": "user", "content": "Ok"}], {"max_tokens": 4000}, "reasoning"),
    ([{"role": "user", "content": "Good morning!"}], {}, "unknown"),
    ([{"role": "user", "content": "Summarize this and then write a poem about it"}], {}, "unknown"),  # both sides
])
def test_classifier_rules(messages: list[dict[str, str]], extra: dict[str, object], task: str) -> None:
    c = classify(messages, **extra)  # type: ignore[arg-type]
    assert c.task == task, c.reason
    assert c.reason


def test_breaker_state_machine() -> None:
    now = [0.0]
    b = CircuitBreaker(failures=2, cooldown=10, clock=lambda: now[0])
    assert b.allow() and b.state == Circuit.CLOSED
    b.failure()
    assert b.allow()  # one failure is not enough
    b.failure()
    assert b.state == Circuit.OPEN and not b.allow() and b.retry_in() == 10
    now[0] = 10
    assert b.allow() and b.state == Circuit.HALF_OPEN
    assert not b.allow()  # only one trial at a time
    b.success()
    assert b.state == Circuit.CLOSED and b.failures == 0 and b.allow()
    b.failure(), b.failure()
    now[0] = 20
    assert b.allow()
    b.failure()  # the trial failed: open again at once
    assert b.state == Circuit.OPEN and b.retry_in() == 10


def _row(route: str, key: str, cost: float, ref: float, ts: float, status: str = "ok") -> LedgerRow:
    return LedgerRow(route=route, reason="r", task="t", model="m", status=status, stream=False, tokens_in=10,
                     tokens_out=5, latency_s=0.5, cost_usd=cost, reference_usd=ref, api_key=key, ts=ts)


def test_ledger_is_wal_full_sync_and_totals_by_day_and_key(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    day1, day2 = 1_790_000_000.0, 1_790_000_000.0 + 86400
    ledger.record(_row("local", "bot", 0.0001, 0.002, day1))
    ledger.record(_row("flash", "bot", 0.003, 0.003, day1))
    ledger.record(_row("local", "-", 0.0001, 0.001, day2, status="error"))
    db = ledger._conn()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    by_day = ledger.totals("day")
    assert [d["requests"] for d in by_day] == [2, 1]
    assert by_day[0]["saved_usd"] == pytest.approx(0.002 + 0.003 - 0.0001 - 0.003)
    by_key = {r["api_key"]: r for r in ledger.totals("api_key")}
    assert (by_key["bot"]["local"], by_key["bot"]["cloud"], by_key["-"]["errors"]) == (1, 1, 1)
    assert [r["route"] for r in ledger.totals("route", since=day2 - 1)] == ["local"]
    with pytest.raises(ValueError):
        ledger.totals("nonsense")  # type: ignore[arg-type]
    ledger.close()


def test_costs_cli_prints_and_reports_json(tmp_path: Path) -> None:
    home = tmp_path / "slmnode-home"  # the autouse fixture's SLMNODE_HOME
    runner = CliRunner()
    r = runner.invoke(main, ["costs"])
    assert r.exit_code == 1 and "no ledger yet" in r.output
    ledger = Ledger(home / "ledger.db")
    ledger.record(_row("local", "bot", 0.0001, 0.002, time.time()))
    ledger.record(_row("flash", "ops", 0.003, 0.003, time.time() - 30 * 86400))
    ledger.close()
    r = runner.invoke(main, ["costs", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["total"]["requests"] == 2 and report["total"]["saved_usd"] == pytest.approx(0.0019)
    assert {k["api_key"] for k in report["by_api_key"]} == {"bot", "ops"}
    recent = json.loads(runner.invoke(main, ["costs", "--json", "--since", "7d"]).output)
    assert recent["total"]["requests"] == 1
    table = runner.invoke(main, ["costs"])
    assert table.exit_code == 0 and "saved" in table.output
    bad = runner.invoke(main, ["costs", "--since", "yesterday"])
    assert bad.exit_code == 1 and "30m, 12h, 7d" in bad.output


def test_ledger_on_a_broken_path_does_not_raise(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ledger = Ledger(blocker / "ledger.db")  # its parent is a file: cannot be created
    assert ledger.record(_row("local", "-", 0, 0, 1.0)) is None and ledger.writable is False
