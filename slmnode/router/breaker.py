"""A circuit breaker per upstream: stop calling an endpoint that keeps failing, try again after a cooldown.

    closed ──(N consecutive failures)──▶ open ──(cooldown elapsed)──▶ half_open
      ▲                                   ▲                              │
      └────────────(trial succeeds)───────┼──────────(trial fails)───────┘

In ``half_open`` exactly one request (the trial) is let through; the others skip the upstream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


class Circuit(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, failures: int = 3, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.cooldown, self.clock = failures, cooldown, clock
        self.state = Circuit.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.trial_running = False

    def allow(self) -> bool:
        """May a request go to this upstream now? (Claims the trial slot when half-open.)"""
        if self.state == Circuit.OPEN and self.clock() - self.opened_at >= self.cooldown:
            self.state = Circuit.HALF_OPEN
            self.trial_running = False
        if self.state == Circuit.CLOSED:
            return True
        if self.state == Circuit.HALF_OPEN and not self.trial_running:
            self.trial_running = True
            return True
        return False

    def success(self) -> None:
        self.state, self.failures, self.trial_running = Circuit.CLOSED, 0, False

    def failure(self) -> None:
        self.failures += 1
        if self.state == Circuit.HALF_OPEN or self.failures >= self.threshold:
            self.state, self.opened_at, self.trial_running = Circuit.OPEN, self.clock(), False

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a trial through (0 when not open)."""
        if self.state != Circuit.OPEN:
            return 0.0
        return max(0.0, self.cooldown - (self.clock() - self.opened_at))
