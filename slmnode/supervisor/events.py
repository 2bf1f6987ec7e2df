"""The node's event log: every state change as a structured log line and a row in SQLite.

``$SLMNODE_HOME/events.db`` (WAL). A data dir that is full or read-only never stops serving: the
log line is still written to stderr and the failure is reported once.

:meth:`EventLog.record` is called on the event loop (by the supervised engines and the thermal
governor), so it never touches SQLite itself: the row is handed to the log's one writer thread,
which writes rows in the order recorded (a slow SD card or a database locked by ``slmnode events``
in another process stalls that thread, never the node). Reads go through the same thread, so they
see every row recorded before them; :meth:`EventLog.flush` waits for the rows recorded so far.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
    def __init__(self, path: Path | None = None, *, busy_timeout: float = 5.0) -> None:
        self.path = path or home_dir() / "events.db"
        self.busy_timeout = busy_timeout  # seconds a write waits for another process's lock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._broken: str | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slmnode-events")
        self.listeners: list[Callable[[Event], None]] = []

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=self.busy_timeout)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db)
            self._db = db
        return self._db

    def record(self, kind: str, message: str, *, model: str | None = None, **data: Any) -> Event:
        """Log the event, queue its row for the writer thread and tell the listeners; never blocks."""
        ev = Event(time.time(), kind, model, message, data)
        log.warning(json.dumps({"event": kind, "model": model, "message": message, **data}, default=str))
        try:
            self._writer.submit(self._write, ev)
        except RuntimeError:  # the interpreter is shutting down: no new threads, write it here
            self._write(ev)
        for listener in self.listeners:
            try:
                listener(ev)
            except Exception:  # a listener (alert) never affects the node
                log.exception("event listener failed")
        return ev

    def _write(self, ev: Event) -> None:
        with self._lock:
            try:
                with self._conn() as db:
                    db.execute("INSERT INTO events (ts, kind, model, message, data) VALUES (?, ?, ?, ?, ?)",
                               (ev.ts, ev.kind, ev.model, ev.message, json.dumps(ev.data, default=str)))
                self._broken = None
            except (sqlite3.Error, OSError) as exc:
                if self._broken is None:
                    log.error("cannot write the event log %s (%s); serving continues", self.path, exc)
                self._broken = str(exc)
                self._db = None
            except Exception:  # a bug: the writer thread's future would swallow it silently
                log.exception("cannot write event %s to %s", ev.kind, self.path)

    def flush(self) -> None:
        """Wait until every event recorded so far is written (or has failed to be). Blocking."""
        try:
            self._writer.submit(lambda: None).result()
        except RuntimeError:  # the interpreter is shutting down; its exit joins the writer anyway
            pass

    @property
    def writable(self) -> bool:
        """False while the last write failed (as of the writes finished so far; see :meth:`flush`)."""
        return self._broken is None

    def recent(self, limit: int = 50, kind: str | None = None) -> list[Event]:
        """The newest events first, including every one recorded before this call. Blocking."""
        return self._writer.submit(self._recent, limit, kind).result()

    def _recent(self, limit: int, kind: str | None) -> list[Event]:
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
        """Write what is pending and close the database (a later record opens it again). Blocking."""
        self.flush()
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
