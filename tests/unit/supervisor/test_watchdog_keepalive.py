"""The systemd watchdog keeps being fed while the engine loads, restarts or is in error.

A real unix datagram socket stands in for systemd's notify socket (``NOTIFY_SOCKET``), with a small
``WATCHDOG_USEC``; the engine is the real SupervisedEngine over a fake worker the test crashes and
whose reload it holds open. Every wait is for a datagram or a state change, bounded generously.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from slmnode.engine.client import EngineState
from slmnode.supervisor import systemd
from tests.unit.supervisor.fakes import FakeWorker, SupervisedFakeNode

WATCHDOG_USEC = 100_000  # systemd would kill after 0.1 s without WATCHDOG=1; pings every 0.05 s
BOUND = 100 * WATCHDOG_USEC / 1e6  # a generous bound on any single wait (10 s)
EXTEND = f"EXTEND_TIMEOUT_USEC={int(WATCHDOG_USEC / 2 * systemd.EXTEND_PERIODS)}"


@pytest.fixture()
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    with tempfile.TemporaryDirectory(prefix="slm-") as d:  # short path: AF_UNIX paths are limited to 108 bytes
        path = os.path.join(d, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        try:
            yield sock
        finally:
            sock.close()


def _drain(sock: socket.socket) -> None:
    """Discard the datagrams sent so far (before the state the test is about)."""
    while True:
        try:
            sock.recv(4096)
        except BlockingIOError:
            return


async def _next(sock: socket.socket) -> str:
    loop = asyncio.get_running_loop()
    return (await asyncio.wait_for(loop.sock_recv(sock, 4096), BOUND)).decode()


async def _pings(sock: socket.socket, n: int) -> list[set[str]]:
    """The next ``n`` keep-alive datagrams, as sets of lines (STATUS= lines may come in between)."""
    out: list[set[str]] = []
    while len(out) < n:
        lines = set((await _next(sock)).splitlines())
        if "WATCHDOG=1" in lines:
            out.append(lines)
    return out


def test_watchdog_pings_continue_through_load_restart_and_error(notify_socket: socket.socket, tmp_path: Path) -> None:
    async def scenario() -> None:
        first_load, reload = asyncio.Event(), asyncio.Event()
        w0, w1, w2 = FakeWorker(first_load), FakeWorker(reload), FakeWorker(fail="the GGUF is corrupt")
        f = SupervisedFakeNode(tmp_path, [w0, w1, w2])
        await f.supervision.start(f.node)
        load = asyncio.create_task(f.node.models.start_default())

        # the first load, before READY=1: fed, and the start timeout extended
        await f.wait_state(EngineState.LOADING, BOUND)
        _drain(notify_socket)
        for ping in await _pings(notify_socket, 3):
            assert ping == {"WATCHDOG=1", EXTEND}
        first_load.set()
        await asyncio.wait_for(load, BOUND)
        f.node.startup_done = True
        _drain(notify_socket)
        assert await _pings(notify_socket, 1) == [{"WATCHDOG=1"}]  # serving: nothing to extend

        # the worker crashes; the supervisor restarts it and the reload is held open
        w0.crash()
        await f.wait_state(EngineState.LOADING, BOUND)
        _drain(notify_socket)
        for ping in await _pings(notify_socket, 3):
            assert ping == {"WATCHDOG=1", EXTEND}
            assert f.engine is not None and f.engine.state == EngineState.LOADING  # still down
        reload.set()
        await f.wait_state(EngineState.READY, BOUND)
        assert f.engine is not None and f.engine.restarts == 1

        # it crashes again and the model cannot load any more: state error, the node stays up
        w1.crash()
        await f.wait_state(EngineState.ERROR, BOUND)
        _drain(notify_socket)
        for ping in await _pings(notify_socket, 3):
            assert ping == {"WATCHDOG=1"}
            assert f.engine.state == EngineState.ERROR

        await f.supervision.stop()
        while "STOPPING=1" not in await _next(notify_socket):
            pass
        await f.node.models.stop_all()
        kinds = [e.kind for e in f.events.recent(10)]
        assert kinds == ["load_failed", "crash", "restarted", "crash", "loaded"]

    asyncio.run(scenario())


def test_keepalive_period_and_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd.keepalive_period() is None  # not run by systemd
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/x.sock")
    assert systemd.keepalive_period() == (systemd.KEEPALIVE_S, False)  # Type=notify without WatchdogSec
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert systemd.keepalive_period() == (30.0, True)
    assert systemd.keepalive_message(period=30.0, watchdog=True, loading=True) == \
        "WATCHDOG=1\nEXTEND_TIMEOUT_USEC=90000000"
    assert systemd.keepalive_message(period=15.0, watchdog=False, loading=True) == "EXTEND_TIMEOUT_USEC=45000000"
    assert systemd.keepalive_message(period=15.0, watchdog=False, loading=False) is None


def test_notify_never_blocks_when_the_receiver_is_not_reading(notify_socket: socket.socket) -> None:
    """A full notify queue loses keep-alives instead of stalling the event loop that sends them."""
    results: list[bool] = []

    def flood() -> None:
        for _ in range(100_000):  # far more than any unix datagram queue holds
            results.append(systemd.notify("WATCHDOG=1"))
            if not results[-1]:
                return

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    t.join(BOUND)
    assert not t.is_alive(), "notify() blocked on a full queue"
    assert results[0] and results[-1] is False
