"""The bench history round-trips in a real SQLite file, with named migrations and WAL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from slmnode.bench.history import MIGRATIONS, BenchHistory, default_path
from slmnode.bench.results import BenchReport, TargetResult, make_metric
from slmnode.cli import main
from slmnode.errors import StoreError


def report(label: str, tg: float, ttft: float, target: str = "slmnode m t2 c2048") -> BenchReport:
    t = TargetResult(label=target, kind="node", url="http://127.0.0.1:1", model="m",
                     metrics={"tg128": make_metric("tg128", [tg - 1, tg, tg + 1], 128),
                              "ttft_s": make_metric("ttft_s", [ttft])})
    return BenchReport(label=label, repeats=3, targets=[t])


def test_runs_round_trip_and_compare(tmp_path: Path) -> None:
    path = tmp_path / "bench.db"
    with BenchHistory(path) as h:
        a = h.add(report("before", 40.0, 0.50))
        b = h.add(report("after", 50.0, 0.25))
    with BenchHistory(path) as h:  # reopened: nothing re-applied, data still there
        assert h.applied() == [name for name, _ in MIGRATIONS]
        assert h.migrate() == []
        got = h.get(b)
        assert got.id == b and got.label == "after"
        assert got.targets[0].metrics["tg128"].values == [49.0, 50.0, 51.0]
        runs = h.list()
        assert [r.id for r in runs] == [b, a]
        assert runs[0].headline == {"tg128": 50.0, "ttft_s": 0.25}
        ra, rb, rows = h.compare(a, b)
    assert (ra.id, rb.id) == (a, b)
    ratios = {metric: r for _target, metric, _va, _vb, r in rows}
    assert ratios == {"tg128": pytest.approx(1.25), "ttft_s": pytest.approx(2.0)}  # b better on both
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM measurements").fetchone()[0] == 4


def test_compare_pairs_differently_named_targets_by_position(tmp_path: Path) -> None:
    with BenchHistory(tmp_path / "b.db") as h:
        a = h.add(report("slmnode", 40.0, 0.5, target="slmnode"))
        b = h.add(report("llama-server", 20.0, 1.0, target="127.0.0.1:8081 (gemma)"))
        _, _, rows = h.compare(a, b)
    assert rows[0][0] == "slmnode → 127.0.0.1:8081 (gemma)"
    assert {m: r for _t, m, _a, _b, r in rows} == {"tg128": pytest.approx(0.5), "ttft_s": pytest.approx(0.5)}


def test_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    with BenchHistory(tmp_path / "b.db") as h, pytest.raises(StoreError, match="no bench run 9"):
        h.get(9)


def test_history_cli_lists_shows_and_compares() -> None:
    runner = CliRunner()
    assert "no bench runs yet" in runner.invoke(main, ["bench", "history"]).output
    with BenchHistory() as h:  # $SLMNODE_HOME/bench.db
        assert h.path == default_path()
        a, b = h.add(report("one", 40.0, 0.5)), h.add(report("two", 44.0, 0.4))
    out = runner.invoke(main, ["bench", "history"])
    assert out.exit_code == 0 and "one" in out.output and "44.0" in out.output
    out = runner.invoke(main, ["bench", "history", "--compare", str(a), str(b), "--json"])
    assert out.exit_code == 0
    assert '"b_better_by": 1.1' in out.output
    out = runner.invoke(main, ["bench", "history", "--show", "99"])
    assert out.exit_code == 1 and "no bench run 99" in out.output
