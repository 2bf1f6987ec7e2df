"""The thermal governor: slow down when warm, stop taking work when hot.

Reads the hottest thermal zone (and, on a Raspberry Pi, the firmware's throttle flags) every
``interval`` seconds through the hardware probe.
- below ``soft`` °C: normal;
- at or above ``soft``: decode with fewer threads (half, at least 1) and pause ``pace_ms``
  between decode steps;
- at or above ``hard``: also admit no new work (503 + Retry-After) until the temperature falls
  below ``soft`` again (hysteresis).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from slmnode.errors import ThermalLimit
from slmnode.hardware.root import SysRoot
from slmnode.hardware.thermal import thermal_zones, throttled_facts


class Heat(str, Enum):
    NORMAL = "normal"
    SOFT = "soft"
    HARD = "hard"


def next_heat(current: Heat, celsius: float | None, soft: float, hard: float) -> Heat:
    """The governor's state machine (hysteresis: HARD holds until below ``soft``)."""
    if celsius is None:
        return Heat.NORMAL
    if celsius >= hard:
        return Heat.HARD
    if current == Heat.HARD and celsius >= soft:
        return Heat.HARD
    return Heat.SOFT if celsius >= soft else Heat.NORMAL


@dataclass
class ThermalGovernor:
    root: SysRoot
    soft: float = 75.0
    hard: float = 82.0
    interval: float = 5.0
    pace_ms: float = 50.0
    threads: int = 4
    state: Heat = Heat.NORMAL
    celsius: float | None = None
    throttled: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.on_change: list[Callable[[Heat, Heat, float | None], None]] = []
        self.apply: list[Callable[[int | None, float], None]] = []  # engine.govern(threads, pace_ms)
        self._task: asyncio.Task[None] | None = None

    def read(self) -> float | None:
        zones = thermal_zones(self.root)
        t = throttled_facts(self.root)
        self.throttled = t.to_dict() if t else None
        return max((z.celsius for z in zones), default=None)

    def step(self) -> Heat:
        self.celsius = self.read()
        new = next_heat(self.state, self.celsius, self.soft, self.hard)
        if new != self.state:
            old, self.state = self.state, new
            for cb in self.on_change:
                cb(old, new, self.celsius)
        self.push()
        return new

    def push(self) -> None:
        threads, pace = (None, 0.0) if self.state == Heat.NORMAL else (max(1, self.threads // 2), self.pace_ms)
        if self.state == Heat.NORMAL:
            threads = self.threads
        for fn in self.apply:
            fn(threads, pace)

    def gate(self) -> None:
        """Admission check: raises :class:`ThermalLimit` while HARD."""
        if self.state == Heat.HARD:
            raise ThermalLimit(f"the board is at {self.celsius:.1f} °C (hard limit {self.hard:.0f} °C): no new work "
                               f"until it cools below {self.soft:.0f} °C")

    def health(self) -> dict[str, Any]:
        return {"thermal": {"state": self.state.value, "celsius": self.celsius, "soft_limit": self.soft,
                            "hard_limit": self.hard, "throttled": self.throttled}}

    async def run(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.step()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
