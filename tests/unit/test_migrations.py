"""Migrations are atomic: a migration and its row commit together, or neither does.

The crash test kills a real process (SIGKILL) between a migration's SQL and the row recording it;
the next start must open the database and apply the migration exactly once.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from slmnode.migrations import apply_migrations, statements
from slmnode.supervisor.events import MIGRATIONS, EventLog

ROOT = Path(__file__).resolve().parents[2]

# Applies the event log's migration with one more statement at its end that reports "half-way" and
# then waits for stdin forever: the process is in the middle of the migration when it is killed.
CHILD = r"""
import sqlite3, sys
from slmnode.migrations import apply_migrations
from slmnode.supervisor.events import MIGRATIONS

db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA journal_mode=WAL")

def half_way():
    print("half-way", flush=True)
    sys.stdin.read()  # until killed
    return 0

db.create_function("half_way", 0, half_way)
(name, sql), = MIGRATIONS
apply_migrations(db, [(name, sql + "\nSELECT half_way();")])
print("finished", flush=True)
"""


def test_a_process_killed_mid_migration_leaves_a_database_the_next_start_migrates_once(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "half-way"  # the tables exist in its transaction now
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    log = EventLog(path)  # the next start
    log.record("crash", "worker exited", model="m")
    assert [e.kind for e in log.recent(5)] == ["crash"]
    assert log.writable
    db = sqlite3.connect(path)
    assert db.execute("SELECT name FROM _migrations").fetchall() == [(MIGRATIONS[0][0],)]
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert apply_migrations(db, MIGRATIONS) == []


def test_a_failing_migration_is_rolled_back_with_its_row_and_the_earlier_ones_stay(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.db")
    good = ("001_a", "CREATE TABLE a (x INTEGER);")
    bad = ("002_b", "CREATE TABLE b (x INTEGER); INSERT INTO b VALUES (1); INSERT INTO no_such_table VALUES (1);")
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        apply_migrations(db, [good, bad])
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"_migrations", "a"}  # b's CREATE TABLE went with the failure
    assert [r[0] for r in db.execute("SELECT name FROM _migrations")] == ["001_a"]
    fixed = ("002_b", "CREATE TABLE b (x INTEGER); INSERT INTO b VALUES (1);")
    assert apply_migrations(db, [good, fixed]) == ["002_b"]
    assert apply_migrations(db, [good, fixed]) == []
    assert db.execute("SELECT x FROM b").fetchall() == [(1,)]


def test_migrations_leave_the_connection_as_they_found_it(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.db")
    apply_migrations(db, [("001_t", "CREATE TABLE t (x INTEGER)")])
    assert db.isolation_level == "" and not db.in_transaction
    db.execute("INSERT INTO t VALUES (1)")  # the module's usual implicit transaction...
    db.rollback()
    assert db.execute("SELECT count(*) FROM t").fetchone() == (0,)  # ...still there


def test_statements_are_split_where_sqlite_says_a_statement_ends() -> None:
    script = """
        CREATE TABLE t (s TEXT DEFAULT 'a;b');
        CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
            UPDATE t SET s = 'x;y' WHERE rowid = new.rowid;
        END;
        -- a comment; with a semicolon
        INSERT INTO t VALUES ('c;d')
    """
    parts = list(statements(script))
    assert [p.split()[0:2] for p in parts[:2]] == [["CREATE", "TABLE"], ["CREATE", "TRIGGER"]]
    assert parts[0].endswith("DEFAULT 'a;b');") and parts[1].endswith("END;")
    assert len(parts) == 3 and "INSERT INTO t VALUES ('c;d')" in parts[2]
    db = sqlite3.connect(":memory:")
    assert apply_migrations(db, [("001", script)]) == ["001"]
    assert db.execute("SELECT s FROM t").fetchall() == [("x;y",)]
