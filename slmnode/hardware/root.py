"""All /proc and /sys reads go through a :class:`SysRoot` so tests can point them at a capture.

A capture is a directory laid out like the real filesystem (``proc/cpuinfo``,
``sys/class/thermal/...``) plus, for facts that come from commands, ``cmd/<name>.txt``
holding that command's output (``cmd/vcgencmd_get_throttled.txt``). Commands are only run when
the root is the live system ``/``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


class SysRoot:
    def __init__(self, root: str | Path = "/") -> None:
        self.root = Path(root)
        self.live = self.root.resolve() == Path("/")

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def read(self, rel: str) -> str | None:
        """Text of ``rel`` (e.g. ``"proc/meminfo"``), or None if absent/unreadable."""
        try:
            return self.path(rel).read_bytes().decode("utf-8", "replace")
        except OSError:
            return None

    def read_int(self, rel: str) -> int | None:
        text = self.read(rel)
        try:
            return int(text.strip()) if text is not None else None
        except ValueError:
            return None

    def glob(self, pattern: str) -> list[Path]:
        return sorted(self.root.glob(pattern.lstrip("/")))

    def command(self, name: str, argv: list[str], timeout: float = 5.0) -> str | None:
        """Output of ``argv`` on the live system; ``cmd/<name>.txt`` in a capture."""
        if not self.live:
            return self.read(f"cmd/{name}.txt")
        if shutil.which(argv[0]) is None:
            return None
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None
