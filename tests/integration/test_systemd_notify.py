"""A real node under a real notify socket: keep-alives from the start, and through a model that is down.

``NOTIFY_SOCKET`` points at a unix datagram socket the test binds, with a small ``WATCHDOG_USEC``.
The node's worker is killed while the (captured) meminfo says the model no longer fits, so the
supervisor's restart is refused and the engine stays in state ``error``: systemd must keep being fed,
or it would kill the node the supervisor is keeping up.
"""

from __future__ import annotations

import os
import queue
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from slmnode.catalog.embedded import DEFAULT_EMBEDDED
from tests.conftest import start_node

pytestmark = pytest.mark.integration
WATCHDOG_USEC = 200_000
BOUND = 120.0  # a generous bound on any single wait (a model load included)


class NotifyReceiver:
    """systemd's side of sd_notify: a bound datagram socket, read by a thread into a queue."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            self.messages.put(data.decode())

    def until(self, line: str) -> list[str]:
        """The messages up to and including the first that has ``line``."""
        seen: list[str] = []
        while not seen or line not in seen[-1].splitlines():
            seen.append(self.messages.get(timeout=BOUND))
        return seen


@pytest.fixture()
def receiver() -> Iterator[NotifyReceiver]:
    with tempfile.TemporaryDirectory(prefix="slm-") as d:  # AF_UNIX paths are limited to 108 bytes
        r = NotifyReceiver(os.path.join(d, "notify.sock"))
        yield r
        r.sock.shutdown(socket.SHUT_RDWR)
        r.sock.close()


def test_a_real_node_feeds_the_watchdog_while_loading_and_while_its_model_is_down(
        embedded_home: Path, tmp_path: Path, receiver: NotifyReceiver) -> None:
    (tmp_path / "proc").mkdir()
    meminfo = tmp_path / "proc/meminfo"
    meminfo.write_text("MemTotal: 16000000 kB\nMemAvailable: 15000000 kB\n")
    env = {"SLMNODE_HARDWARE_ROOT": str(tmp_path), "SLMNODE_CANARY_INTERVAL": "0",
           "NOTIFY_SOCKET": receiver.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    p, url = start_node(embedded_home, "--ctx", "512", env=env)
    try:
        before_ready = receiver.until("READY=1")
        keepalives = [set(m.splitlines()) for m in before_ready[:-1] if "WATCHDOG=1" in m]
        assert keepalives, f"no keep-alive before READY=1: {before_ready}"
        assert all(any(x.startswith("EXTEND_TIMEOUT_USEC=") for x in k) for k in keepalives)  # loading

        meminfo.write_text("MemTotal: 16000000 kB\nMemAvailable: 1000 kB\n")  # the model no longer fits
        (worker,) = psutil.Process(p.proc.pid).children()
        worker.kill()
        receiver.until(f"STATUS={DEFAULT_EMBEDDED.name}: error")  # the restart was refused: the model is down
        for _ in range(3):
            assert "WATCHDOG=1" in receiver.until("WATCHDOG=1")[-1]
        h = httpx.get(f"{url}/health", timeout=BOUND).json()
        assert h["status"] == "error" and "MiB is available" in h["error"]
        assert p.proc.poll() is None
    finally:
        p.stop()
