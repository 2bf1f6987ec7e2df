"""Blocking I/O stays off the event loop: the thermal reading (vcgencmd) and the event log's SQLite.

Each test blocks the I/O on something only a coroutine on the loop can release (a FIFO the fake
``vcgencmd`` reads, a write lock held by another connection). If the I/O ran on the loop, that
coroutine could not run while it blocks: the I/O would time out and the test fail.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from slmnode.hardware import thermal as hw_thermal
from slmnode.hardware.root import SysRoot
from slmnode.hardware.thermal import decode_throttled
from slmnode.supervisor.events import EventLog
from tests.unit.supervisor.fakes import SupervisedFakeNode

BOUND = 60.0  # a generous bound on any wait; nothing here takes near it unless the loop is blocked


def test_vcgencmd_runs_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "throttled.fifo"
    os.mkfifo(fifo)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "vcgencmd"  # prints what the test writes into the FIFO; blocks until then
    fake.write_text(f"#!/bin/sh\nexec cat '{fifo}'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(hw_thermal, "VCGENCMD_TIMEOUT_S", BOUND)
    release = threading.Event()

    def feed() -> None:  # opening the FIFO for writing waits for vcgencmd to open it for reading
        if release.wait(BOUND):
            with open(fifo, "w") as w:
                w.write("throttled=0x50005\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()

    async def scenario() -> None:
        f = SupervisedFakeNode(tmp_path, [], root=SysRoot("/"))  # live root: vcgencmd is run
        stepped = asyncio.Event()
        f.governor.apply.append(lambda threads, pace: stepped.set())

        async def probe() -> None:  # runs only if the loop is free while vcgencmd blocks
            release.set()

        probing = asyncio.create_task(probe())
        await f.supervision.start(f.node)  # the first thermal reading starts here
        await asyncio.wait_for(stepped.wait(), BOUND)
        await probing
        assert f.governor.throttled == decode_throttled(0x50005).to_dict()
        assert f.governor.health()["thermal"]["throttled"]["now"] == ["under_voltage", "throttled"]
        await f.supervision.stop()

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # frees a writer still waiting for a reader
        writer.join(BOUND)
        os.close(fd)


def test_event_log_writes_do_not_block_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "events.db"

    async def scenario() -> None:
        log = EventLog(path, busy_timeout=BOUND)
        log.record("loaded", "model loaded")
        await asyncio.to_thread(log.flush)
        other = sqlite3.connect(path, isolation_level=None)  # e.g. `slmnode events` in another process
        other.execute("BEGIN IMMEDIATE")  # holds the write lock

        async def probe() -> None:  # runs only if record() returned without waiting for the lock
            other.execute("COMMIT")

        probing = asyncio.create_task(probe())
        log.record("crash", "engine worker exited", model="m")  # on the loop, as the supervisor calls it
        await asyncio.wait_for(probing, BOUND)
        await asyncio.to_thread(log.flush)
        assert log.writable
        assert [e.kind for e in await asyncio.to_thread(log.recent, 5)] == ["crash", "loaded"]
        other.close()
        await asyncio.to_thread(log.close)

    asyncio.run(scenario())
