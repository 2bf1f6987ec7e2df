"""Supervisor parts with real receivers: unix datagram socket, local HTTP server, files on disk."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from slmnode.errors import NotEnoughMemory, ThermalLimit
from slmnode.hardware.root import SysRoot
from slmnode.supervisor import systemd
from slmnode.supervisor.alerts import Alerts, Telegram, UptimeKuma
from slmnode.supervisor.events import EventLog, migrate
from slmnode.supervisor.memory import memory_check
from slmnode.supervisor.thermal import Heat, ThermalGovernor, next_heat


@pytest.mark.parametrize("cur,temp,new", [
    (Heat.NORMAL, 40.0, Heat.NORMAL), (Heat.NORMAL, 75.0, Heat.SOFT), (Heat.NORMAL, 82.0, Heat.HARD),
    (Heat.SOFT, 74.9, Heat.NORMAL), (Heat.HARD, 78.0, Heat.HARD), (Heat.HARD, 74.0, Heat.NORMAL),
    (Heat.SOFT, 90.0, Heat.HARD), (Heat.HARD, None, Heat.NORMAL),
])
def test_heat_state_machine_with_hysteresis(cur: Heat, temp: float | None, new: Heat) -> None:
    assert next_heat(cur, temp, 75.0, 82.0) == new


def _zone(root: Path, milli: int, n: int = 0) -> None:
    d = root / f"sys/class/thermal/thermal_zone{n}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "temp").write_text(f"{milli}\n")
    (d / "type").write_text("cpu-thermal\n")


def test_governor_slows_then_refuses_then_recovers(tmp_path: Path) -> None:
    _zone(tmp_path, 50000)
    _zone(tmp_path, 45000, 1)
    gov = ThermalGovernor(SysRoot(tmp_path), threads=4)
    applied: list[tuple[int | None, float]] = []
    changes: list[tuple[Heat, Heat]] = []
    gov.apply.append(lambda t, p: applied.append((t, p)))
    gov.on_change.append(lambda old, new, c: changes.append((old, new)))
    assert gov.step() == Heat.NORMAL and applied[-1] == (4, 0.0)
    _zone(tmp_path, 77000)
    assert gov.step() == Heat.SOFT and applied[-1] == (2, 50.0)
    gov.gate()  # still admits
    _zone(tmp_path, 85500, 1)  # the hottest zone counts
    assert gov.step() == Heat.HARD
    with pytest.raises(ThermalLimit, match="85.5 °C") as exc:
        gov.gate()
    assert exc.value.retry_after == 30 and exc.value.status_code == 503
    _zone(tmp_path, 70000, 1)
    assert gov.step() == Heat.HARD  # zone0 still at 77: holds until below soft
    _zone(tmp_path, 60000)
    assert gov.step() == Heat.NORMAL and applied[-1] == (4, 0.0)
    assert changes == [(Heat.NORMAL, Heat.SOFT), (Heat.SOFT, Heat.HARD), (Heat.HARD, Heat.NORMAL)]
    assert gov.health()["thermal"]["state"] == "normal"


def test_sd_notify_over_a_real_unix_datagram_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert systemd.notify("READY=1\nSTATUS=serving")
        assert sock.recv(1024) == b"READY=1\nSTATUS=serving"
    abstract = f"@slmnode-test-{tmp_path.name}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + abstract[1:])
        assert systemd.notify("WATCHDOG=1", abstract)
        assert sock.recv(64) == b"WATCHDOG=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert systemd.notify("READY=1") is False


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert systemd.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert systemd.watchdog_interval() is None  # meant for another process


def test_unit_text_has_the_supervision_keys() -> None:
    text = systemd.unit_text(exec_args=["/usr/bin/slmnode", "serve", "--port", "8080"], user="pi", memory_max="6G")
    for line in ("Type=notify", "WatchdogSec=60", "Restart=on-failure", "MemoryMax=6G", "User=pi",
                 "ExecStart=/usr/bin/slmnode serve --port 8080"):
        assert line in text.splitlines()


def test_events_round_trip_and_migrations_are_named_and_idempotent(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db")
    log.record("crash", "worker exited", model="m", pid=12)
    log.record("restarted", "back", model="m")
    (latest, first) = log.recent(10)
    assert (latest.kind, first.kind, first.data) == ("restarted", "crash", {"pid": 12})
    assert [e.kind for e in log.recent(10, "crash")] == ["crash"]
    db = log._conn()
    assert [r[0] for r in db.execute("SELECT name FROM _migrations")] == ["001_create_events"]
    assert migrate(db) == []


def test_unwritable_event_log_never_raises(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a dir")
    log = EventLog(tmp_path / "file" / "events.db")
    log.record("crash", "x")  # returns at once; the row is written (here: fails) in the writer thread
    log.flush()
    assert not log.writable


class _Receiver(BaseHTTPRequestHandler):
    hits: list[tuple[str, str, str]] = []

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
        _Receiver.hits.append((self.command, self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    do_GET = do_POST = _handle

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def receiver() -> Iterator[str]:
    _Receiver.hits = []
    srv = HTTPServer(("127.0.0.1", 0), _Receiver)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def test_alerts_reach_telegram_and_uptime_kuma_and_failures_are_contained(receiver: str, tmp_path: Path) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there now

    async def go() -> Alerts:
        alerts = Alerts([Telegram("TOKEN", "42", base_url=receiver), UptimeKuma(f"{receiver}/api/push/abc"),
                         UptimeKuma(f"http://127.0.0.1:{dead_port}/push")], timeout=2)
        log = EventLog(tmp_path / "e.db")
        log.listeners.append(alerts)
        log.record("crash", "engine worker exited with code -9", model="gemma")
        log.record("loaded", "not an alert kind")
        await alerts.drain()
        return alerts

    alerts = asyncio.run(go())
    (tg, kuma) = _Receiver.hits
    assert tg[0] == "POST" and tg[1] == "/botTOKEN/sendMessage"
    assert json.loads(tg[2]) == {"chat_id": "42", "text": "slmnode crash: engine worker exited with code -9 (gemma)"}
    assert kuma[0] == "GET" and kuma[1].startswith("/api/push/abc?status=down&msg=crash")
    assert [n for n, _ in alerts.failed] == ["uptime-kuma"] and len(alerts.sent) == 2


def test_memory_check_refuses_with_numbers(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text("MemTotal:  1000000 kB\nMemFree:  100000 kB\nMemAvailable:  200000 kB\n")
    check = memory_check("/nonexistent.gguf", 600 * 2**20, 4096, "f16", root=SysRoot(tmp_path), name="big:7b")
    with pytest.raises(NotEnoughMemory, match=r"needs about \d+ MiB at context 4096 .* only 195 MiB is available"):
        check()
    (tmp_path / "proc/meminfo").write_text("MemTotal:  8000000 kB\nMemAvailable:  7000000 kB\n")
    check()  # fits now
