"""Every bench run, kept in SQLite at ``$SLMNODE_HOME/bench.db`` (WAL journal).

Schema changes are named migrations recorded in a ``migrations`` table (applied once, in order):
add a new ``(name, sql)`` pair at the end of :data:`MIGRATIONS`, never edit an applied one.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from slmnode.bench.results import BenchReport, TargetResult
from slmnode.bench.stats import speedup
from slmnode.config import home_dir
from slmnode.errors import StoreError
from slmnode.migrations import apply_migrations

MIGRATIONS: list[tuple[str, str]] = [
    ("m001_runs", """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at REAL NOT NULL,
            label TEXT NOT NULL DEFAULT '',
            targets TEXT NOT NULL,
            report TEXT NOT NULL
        );
    """),
    ("m002_measurements", """
        CREATE TABLE measurements (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            target TEXT NOT NULL,
            metric TEXT NOT NULL,
            unit TEXT NOT NULL,
            higher_is_better INTEGER NOT NULL,
            median REAL NOT NULL,
            min REAL NOT NULL,
            max REAL NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (run_id, target, metric)
        );
        CREATE INDEX measurements_metric ON measurements(metric);
    """),
]


def default_path() -> Path:
    return home_dir() / "bench.db"


@dataclass(frozen=True)
class RunSummary:
    id: int
    started_at: float
    label: str
    targets: list[str]
    headline: dict[str, float]  # first target's tg128 / pp512 medians, for listings

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "started_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at)),
                "label": self.label, "targets": self.targets, **self.headline}


def _rows(target: TargetResult) -> list[tuple[str, str, int, float, float, float, int]]:
    rows = [(m.name, m.unit, int(m.higher_is_better), m.median, m.min, m.max, m.summary.n) for m in target.metrics.values()]
    for j in target.jobs:
        if j.wall_s is not None:
            w = j.wall_s
            rows.append((f"job:{j.name}", "s", 0, w.median, w.min, w.max, w.summary.n))
    return rows


class BenchHistory:
    """Append-only store of bench runs."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the bench history {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> BenchHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded; returns their names."""
        return apply_migrations(self._db, MIGRATIONS, table="migrations")

    def applied(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT name FROM migrations ORDER BY rowid")]

    def add(self, report: BenchReport) -> int:
        """Store ``report``; sets and returns its run id."""
        with self._db:
            cur = self._db.execute(
                "INSERT INTO runs (started_at, label, targets, report) VALUES (?, ?, ?, '')",
                (report.started_at, report.label, json.dumps([t.label for t in report.targets])))
            run_id = int(cur.lastrowid or 0)
            report.id = run_id
            self._db.execute("UPDATE runs SET report = ? WHERE id = ?", (report.model_dump_json(), run_id))
            for t in report.targets:
                self._db.executemany("INSERT OR REPLACE INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                     [(run_id, t.label, *row) for row in _rows(t)])
        return run_id

    def get(self, run_id: int) -> BenchReport:
        row = self._db.execute("SELECT report FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no bench run {run_id} in {self.path}; see 'slmnode bench history'")
        return BenchReport.model_validate_json(row[0])

    def list(self, limit: int = 20) -> list[RunSummary]:
        out = []
        for run_id, started, label, targets in self._db.execute(
                "SELECT id, started_at, label, targets FROM runs ORDER BY id DESC LIMIT ?", (limit,)):
            names = json.loads(targets)
            headline = {}
            if names:
                for metric, median in self._db.execute(
                        "SELECT metric, median FROM measurements WHERE run_id = ? AND target = ? AND metric IN "
                        "('tg128', 'pp512', 'ttft_s')", (run_id, names[0])):
                    headline[metric] = median
            out.append(RunSummary(run_id, started, label, names, headline))
        return out

    def compare(self, a: int, b: int) -> tuple[BenchReport, BenchReport, builtins.list[tuple[str, str, float, float, float | None]]]:
        """Both runs and, per (target, metric) they share, (target, metric, a, b, how many times b is better)."""
        ra, rb = self.get(a), self.get(b)
        pairs = _pair_targets(ra.targets, rb.targets)
        rows = []
        for ta, tb in pairs:
            ma = {r[0]: r for r in _rows(ta)}
            mb = {r[0]: r for r in _rows(tb)}
            for metric in [m for m in ma if m in mb]:
                va, vb = ma[metric][3], mb[metric][3]
                name = ta.label if ta.label == tb.label else f"{ta.label} → {tb.label}"
                rows.append((name, metric, va, vb, speedup(vb, va, higher_is_better=bool(ma[metric][2]))))
        return ra, rb, rows


def _pair_targets(a: list[TargetResult], b: list[TargetResult]) -> list[tuple[TargetResult, TargetResult]]:
    """Same label first; the rest by position (e.g. the same slot of a run on another stack)."""
    by_label = {t.label: t for t in b}
    pairs = [(t, by_label[t.label]) for t in a if t.label in by_label]
    rest_a = [t for t in a if t.label not in by_label]
    rest_b = [t for t in b if t.label not in {x.label for x in a}]
    pairs += list(zip(rest_a, rest_b))
    return pairs
