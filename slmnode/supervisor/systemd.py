"""systemd integration: sd_notify over $NOTIFY_SOCKET, and the unit file ``slmnode service install`` writes.

The node sends ``READY=1`` once the model is loaded, ``STATUS=...`` on state changes and
``WATCHDOG=1`` every half ``WatchdogSec`` while it is healthy (the engine answers its canary), so
systemd restarts a node that hangs as a whole.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from pathlib import Path


def notify(message: str, socket_path: str | None = None) -> bool:
    """Send one sd_notify datagram; False (silently) when not run by systemd."""
    path = socket_path or os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    addr = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(message.encode("utf-8"))
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
