"""Named SQLite migrations, shared by every database slmnode keeps (events, ledger, bench history).

A migration is ``(name, sql)``; the names applied are recorded in a table of the database itself,
so each runs once, in order. A migration and the row recording it commit in ONE transaction: a
process killed half-way through leaves the database as it was before that migration, and the next
start applies it again, once. (``executescript`` cannot be used for this: it commits on its own.)
Two processes opening the same database at once are safe too: the check for the row is made
inside the transaction (``BEGIN IMMEDIATE`` takes the write lock first).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence


def statements(script: str) -> Iterator[str]:
    """The complete SQL statements of ``script``, in order (``;`` inside strings or triggers respected)."""
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                yield buf.strip()
            buf = ""
    if buf.strip(" \t\r\n;"):
        yield buf.rstrip(";").strip()  # a trailing statement without its ';' (sqlite reports any error in it)


def apply_migrations(db: sqlite3.Connection, migrations: Sequence[tuple[str, str]],
                     table: str = "_migrations") -> list[str]:
    """Apply the migrations not yet recorded in ``table``; returns the names applied now.

    Each migration runs in its own transaction with its ``table`` row; a failing migration is
    rolled back (and its error raised), leaving the ones before it applied. Any transaction open
    on ``db`` is committed first.
    """
    saved = db.isolation_level
    db.isolation_level = None  # autocommit: the module issues no BEGIN/COMMIT of its own; we do
    try:
        db.execute(f"CREATE TABLE IF NOT EXISTS {table} (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        done = {r[0] for r in db.execute(f"SELECT name FROM {table}")}
        applied = []
        for name, sql in migrations:
            if name not in done and _apply_one(db, table, name, sql):
                applied.append(name)
        return applied
    finally:
        db.isolation_level = saved


def _apply_one(db: sqlite3.Connection, table: str, name: str, sql: str) -> bool:
    """One migration and its row, atomically; False if another process applied it meanwhile."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute(f"SELECT 1 FROM {table} WHERE name = ?", (name,)).fetchone() is not None:
            db.execute("ROLLBACK")
            return False
        for statement in statements(sql):
            db.execute(statement)
        db.execute(f"INSERT INTO {table} VALUES (?, ?)", (name, time.time()))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return True
