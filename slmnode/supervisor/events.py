"""The node's event log: every state change as a structured log line and a row in SQLite.

``$SLMNODE_HOME/events.db`` (WAL). A data dir that is full or read-only never stops serving: the
log line is still written to stderr and the failure is reported once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmnode.config import home_dir
from slmnode.migrations import apply_migrations

log = logging.getLogger("slmnode.events")

MIGRATIONS: list[tuple[str, str]] = [
    ("001_create_events", """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            model TEXT,
            message TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX events_ts ON events(ts);
    """),
]


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the named migrations not yet applied; returns the names applied now."""
    return apply_migrations(db, MIGRATIONS)


@dataclass(frozen=True)
class Event:
    ts: float
    kind: str
    model: str | None
    message: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.ts)),
                "kind": self.kind, "model": self.model, "message": self.message, "data": self.data}


class EventLog:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or home_dir() / "events.db"
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._broken: str | None = None
        self.listeners: list[Callable[[Event], None]] = []

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=5)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db)
            self._db = db
        return self._db

    def record(self, kind: str, message: str, *, model: str | None = None, **data: Any) -> Event:
        ev = Event(time.time(), kind, model, message, data)
        log.warning(json.dumps({"event": kind, "model": model, "message": message, **data}, default=str))
        with self._lock:
            try:
                with self._conn() as db:
                    db.execute("INSERT INTO events (ts, kind, model, message, data) VALUES (?, ?, ?, ?, ?)",
                               (ev.ts, kind, model, message, json.dumps(data, default=str)))
                self._broken = None
            except (sqlite3.Error, OSError) as exc:
                if self._broken is None:
                    log.error("cannot write the event log %s (%s); serving continues", self.path, exc)
                self._broken = str(exc)
                self._db = None
        for listener in self.listeners:
            try:
                listener(ev)
            except Exception:  # a listener (alert) never affects the node
                log.exception("event listener failed")
        return ev

    @property
    def writable(self) -> bool:
        return self._broken is None

    def recent(self, limit: int = 50, kind: str | None = None) -> list[Event]:
        with self._lock:
            db = self._conn()
            q = "SELECT ts, kind, model, message, data FROM events"
            args: tuple[Any, ...] = ()
            if kind:
                q += " WHERE kind = ?"
                args = (kind,)
            rows = db.execute(q + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [Event(ts, k, m, msg, json.loads(d)) for ts, k, m, msg, d in rows]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
