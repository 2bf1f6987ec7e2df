"""The cost ledger: one row per chat request, what it cost and what the reference cloud model would have.

``$SLMNODE_HOME/ledger.db``, SQLite in WAL mode with ``synchronous=FULL``: a row is on disk when
:meth:`Ledger.record` returns, and a process killed mid-write (``kill -9``, power cut) leaves a
database that opens and checks clean, holding every row that was acknowledged. Migrations are named.
API keys are stored by name (configured keys) or as a short hash, never in the clear.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from slmnode.config import home_dir
from slmnode.migrations import apply_migrations

log = logging.getLogger("slmnode.ledger")

MIGRATIONS: list[tuple[str, str]] = [
    ("001_create_requests", """
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            day TEXT NOT NULL,
            api_key TEXT NOT NULL,
            route TEXT NOT NULL,
            reason TEXT NOT NULL,
            task TEXT NOT NULL,
            model TEXT NOT NULL,
            status TEXT NOT NULL,
            stream INTEGER NOT NULL,
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            latency_s REAL NOT NULL,
            cost_usd REAL NOT NULL,
            reference_usd REAL NOT NULL
        );
        CREATE INDEX requests_day ON requests(day);
        CREATE INDEX requests_key ON requests(api_key);
    """),
]

GroupBy = Literal["day", "api_key", "route", "task"]


@dataclass(frozen=True)
class LedgerRow:
    route: str            # "local" or an upstream's name
    reason: str
    task: str
    model: str
    status: str           # "ok" or "error"
    stream: bool
    tokens_in: int
    tokens_out: int
    latency_s: float
    cost_usd: float
    reference_usd: float  # the same tokens on the reference cloud model
    api_key: str = "-"
    ts: float = 0.0       # 0 = now


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the named migrations not yet applied; returns the names applied now."""
    return apply_migrations(db, MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, timeout=10)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    migrate(db)
    return db


class Ledger:
    """Thread-safe writer/reader. A failing disk never fails a request: the error is logged once."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or home_dir() / "ledger.db"
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.writable = True

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = connect(self.path)
        return self._db

    def record(self, row: LedgerRow) -> int | None:
        """Append a row (durable on return); ``None`` if the disk refused it."""
        data = asdict(row)
        ts = data.pop("ts") or time.time()
        data["stream"] = int(data["stream"])
        try:
            with self._lock:
                db = self._conn()
                with db:
                    cur = db.execute(
                        f"INSERT INTO requests (ts, day, {', '.join(data)}) VALUES (?, ?, {', '.join('?' * len(data))})",
                        (ts, time.strftime("%Y-%m-%d", time.gmtime(ts)), *data.values()))
            self.writable = True
            return cur.lastrowid
        except (sqlite3.Error, OSError) as exc:
            if self.writable:
                log.error("cost ledger %s not writable (%s); requests are still served", self.path, exc)
            self.writable = False
            return None

    def rows(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._conn().execute("SELECT * FROM requests ORDER BY id DESC LIMIT ?", (limit,))
            names = [c[0] for c in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def totals(self, by: GroupBy = "day", since: float | None = None) -> list[dict[str, Any]]:
        """Requests, tokens, cost and savings per group (``saved_usd`` = reference - actual)."""
        if by not in ("day", "api_key", "route", "task"):
            raise ValueError(f"cannot group by {by!r}")
        with self._lock:
            cur = self._conn().execute(
                f"""SELECT {by} AS grp, COUNT(*), SUM(route = 'local'), SUM(route != 'local'), SUM(status != 'ok'),
                           SUM(tokens_in), SUM(tokens_out), SUM(cost_usd), SUM(reference_usd), SUM(latency_s)
                    FROM requests WHERE ts >= ? GROUP BY {by} ORDER BY {by}""", (since or 0.0,))
            out = []
            for grp, n, local, cloud, errors, tin, tout, cost, ref, lat in cur.fetchall():
                out.append({by: grp, "requests": n, "local": local, "cloud": cloud, "errors": errors,
                            "tokens_in": tin, "tokens_out": tout, "cost_usd": round(cost, 6),
                            "reference_usd": round(ref, 6), "saved_usd": round(ref - cost, 6),
                            "latency_s": round(lat, 3)})
            return out

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
