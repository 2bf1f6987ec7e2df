"""systemd integration: sd_notify over $NOTIFY_SOCKET, and the unit file ``slmnode service install`` writes.

The node sends ``READY=1`` once the model is loaded, ``STATUS=...`` on state changes and
``WATCHDOG=1`` every half ``WatchdogSec`` while its event loop and supervisor run. The watchdog
proves the node *process* is alive, not the engine: an engine that loads, restarts or is in
error is the supervisor's business (restart with backoff, or state ``error`` with the reason), and
killing the node then would only restart-spin it. While a model loads (the first load before
``READY=1`` included) each keep-alive also carries ``EXTEND_TIMEOUT_USEC``, so a slow load from an
SD card is not cut off by ``TimeoutStartSec``: the timeout is extended for as long as the node is
alive to extend it.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from pathlib import Path


def notify(message: str, socket_path: str | None = None) -> bool:
    """Send one sd_notify datagram; False (silently) when not run by systemd.

    Never blocks (it is called on the event loop): a receiver whose queue is full loses the
    datagram, as a missed keep-alive, rather than stalling the node.
    """
    path = socket_path or os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    addr = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
            sock.connect(addr)
            sock.send(message.encode("utf-8"))
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None if no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6 / 2
    except ValueError:
        return None


KEEPALIVE_S = 15.0  # keep-alive period without a watchdog (EXTEND_TIMEOUT_USEC during loads only)
EXTEND_PERIODS = 3  # EXTEND_TIMEOUT_USEC covers this many keep-alive periods (two may be missed)


def keepalive_period() -> tuple[float, bool] | None:
    """(seconds between keep-alives, whether they carry WATCHDOG=1); None when not run by systemd."""
    every = watchdog_interval()
    if every is not None:
        return every, True
    return (KEEPALIVE_S, False) if os.environ.get("NOTIFY_SOCKET") else None


def keepalive_message(*, period: float, watchdog: bool, loading: bool) -> str | None:
    """The sd_notify keep-alive for one period: ``WATCHDOG=1``, plus ``EXTEND_TIMEOUT_USEC`` while loading."""
    parts = ["WATCHDOG=1"] if watchdog else []
    if loading:
        parts.append(f"EXTEND_TIMEOUT_USEC={int(period * EXTEND_PERIODS * 1e6)}")
    return "\n".join(parts) or None


def unit_text(*, exec_args: list[str] | None = None, user: str | None = None, home: str | None = None,
              memory_max: str = "85%", watchdog_sec: int = 60, description: str = "slmnode local LLM node") -> str:
    argv = exec_args or [sys.executable, "-m", "slmnode", "serve"]
    lines = [
        "[Unit]",
        f"Description={description}",
        "After=network-online.target",
        "Wants=network-online.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={shlex.join(argv)}",
        f"WatchdogSec={watchdog_sec}",
        "Restart=on-failure",
        "RestartSec=5",
        f"MemoryMax={memory_max}",
        "OOMPolicy=stop",
        "TimeoutStartSec=600",
        "Environment=PYTHONUNBUFFERED=1",
    ]
    if user:
        lines.append(f"User={user}")
    if home:
        lines.append(f"Environment=SLMNODE_HOME={home}")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


ZRAM_SNIPPET = """# zram swap (Debian / Raspberry Pi OS): apt install systemd-zram-generator, then
# /etc/systemd/zram-generator.conf:
[zram0]
zram-size = min(ram / 2, 4096)
compression-algorithm = zstd
# then: sudo systemctl daemon-reload && sudo systemctl start systemd-zram-setup@zram0.service
"""

RUNTIME_WATCHDOG_SNIPPET = """# hardware watchdog for the whole box: /etc/systemd/system.conf.d/watchdog.conf
[Manager]
RuntimeWatchdogSec=15
RebootWatchdogSec=2min
# then: sudo systemctl daemon-reexec
"""


def default_unit_path(user_unit: bool) -> Path:
    if user_unit:
        return Path.home() / ".config/systemd/user/slmnode.service"
    return Path("/etc/systemd/system/slmnode.service")
