"""Optional notifiers on state changes: Telegram Bot API and an Uptime Kuma push URL.

A notifier runs in the background with a short timeout; its failure is logged as an event and
never affects serving.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

import httpx

from slmnode.supervisor.events import Event

log = logging.getLogger("slmnode.alerts")
ALERT_KINDS = {"crash", "hang", "restarted", "load_failed", "thermal", "throttled", "under_voltage", "error"}


class Notifier(Protocol):
    name: str

    async def send(self, client: httpx.AsyncClient, event: Event) -> None: ...


@dataclass
class Telegram:
    token: str
    chat_id: str
    base_url: str = "https://api.telegram.org"
    name: str = "telegram"

    async def send(self, client: httpx.AsyncClient, event: Event) -> None:
        text = f"slmnode {event.kind}: {event.message}" + (f" ({event.model})" if event.model else "")
        r = await client.post(f"{self.base_url.rstrip('/')}/bot{self.token}/sendMessage",
                              json={"chat_id": self.chat_id, "text": text})
        r.raise_for_status()


@dataclass
class UptimeKuma:
    push_url: str
    name: str = "uptime-kuma"

    async def send(self, client: httpx.AsyncClient, event: Event) -> None:
        up = event.kind in ("restarted", "loaded", "thermal_ok")
        r = await client.get(self.push_url, params={"status": "up" if up else "down", "msg": f"{event.kind}: {event.message}"[:200]})
        r.raise_for_status()


class Alerts:
    def __init__(self, notifiers: list[Notifier], timeout: float = 5.0) -> None:
        self.notifiers, self.timeout = notifiers, timeout
        self.sent: list[tuple[str, str]] = []
        self.failed: list[tuple[str, str]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, event: Event) -> None:
        """EventLog listener: fire and forget (needs a running loop; otherwise skipped)."""
        if event.kind not in ALERT_KINDS and not event.kind.startswith("thermal"):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._send_all(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_all(self, event: Event) -> None:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            for n in self.notifiers:
                try:
                    await n.send(client, event)
                    self.sent.append((n.name, event.kind))
                except Exception as exc:  # never let an alert failure touch serving
                    self.failed.append((n.name, str(exc)))
                    log.warning("alert via %s failed: %s", n.name, exc)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
