"""The thermal governor: slow down when warm, stop taking work when hot.

Reads the hottest thermal zone (and, on a Raspberry Pi, the firmware's throttle flags) every
``interval`` seconds through the hardware probe.
- below ``soft`` °C: normal;
- at or above ``soft``: decode with fewer threads (half, at least 1) and pause ``pace_ms``
  between decode steps;
- at or above ``hard``: also admit no new work (503 + Retry-After) until the temperature falls
  below ``soft`` again (hysteresis).

Reading is blocking I/O (``vcgencmd`` is a subprocess with a 5 s timeout; sysfs on a busy SD card
can stall), so in the node it runs in a worker thread (:meth:`ThermalGovernor.step_async`); only
the state change and its callbacks run on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from slmnode.errors import ThermalLimit
from slmnode.hardware.root import SysRoot
from slmnode.hardware.thermal import thermal_zones, throttled_facts


class Heat(StrEnum):
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


@dataclass(frozen=True)
class Reading:
    celsius: float | None  # the hottest zone; None without thermal zones
    throttled: dict[str, Any] | None  # the Pi firmware's flags (Throttled.to_dict()); None elsewhere


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

    def read(self) -> Reading:
        """The hottest zone and the firmware's throttle flags. Blocking (runs a command); changes nothing."""
        zones = thermal_zones(self.root)
        t = throttled_facts(self.root)
        return Reading(max((z.celsius for z in zones), default=None), t.to_dict() if t else None)

    def step(self) -> Heat:
        """Read and apply, in the calling thread (blocking: see :meth:`step_async` on an event loop)."""
        return self.update(self.read())

    async def step_async(self) -> Heat:
        """Read in a worker thread, then apply on the loop (callbacks run on the loop)."""
        return self.update(await asyncio.to_thread(self.read))

    def update(self, reading: Reading) -> Heat:
        """Apply a reading: move the state machine, tell ``on_change`` and ``apply``."""
        self.celsius, self.throttled = reading.celsius, reading.throttled
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
                await self.step_async()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
