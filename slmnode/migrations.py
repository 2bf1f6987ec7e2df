"""Named SQLite migrations, shared by every database slmnode keeps (events, ledger, bench history).

A migration is ``(name, sql)``; the names applied are recorded in a table of the database itself,
so each runs once, in order, inside its own transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence


def apply_migrations(db: sqlite3.Connection, migrations: Sequence[tuple[str, str]],
                     table: str = "_migrations") -> list[str]:
    """Apply the migrations not yet recorded in ``table``; returns the names applied now."""
    db.execute(f"CREATE TABLE IF NOT EXISTS {table} (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    done = {r[0] for r in db.execute(f"SELECT name FROM {table}")}
    applied = []
    for name, sql in migrations:
        if name in done:
            continue
        with db:
            db.executescript(sql)
            db.execute(f"INSERT INTO {table} VALUES (?, ?)", (name, time.time()))
        applied.append(name)
    return applied
