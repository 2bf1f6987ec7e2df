"""Assemble a supervised node: supervised engines, thermal governor, systemd notify, alerts, events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import Counter, Gauge

from slmnode.config import Settings
from slmnode.engine.client import EngineClient
from slmnode.hardware.cpu import default_threads
from slmnode.hardware.root import SysRoot
from slmnode.router.config import load_router_config
from slmnode.router.route import Router
from slmnode.server.app import build_node, worker_settings
from slmnode.server.models import ServedModel
from slmnode.server.service import Node
from slmnode.supervisor import systemd
from slmnode.supervisor.alerts import Alerts, Notifier, Telegram, UptimeKuma
from slmnode.supervisor.engine import Policy, SupervisedEngine
from slmnode.supervisor.events import EventLog
from slmnode.supervisor.memory import memory_check
from slmnode.supervisor.thermal import Heat, ThermalGovernor

log = logging.getLogger("slmnode.supervisor")

_HEAT_LEVEL = {Heat.NORMAL: 0, Heat.SOFT: 1, Heat.HARD: 2}


def policy_from(settings: Settings) -> Policy:
    return Policy(hang_timeout=settings.hang_timeout, canary_interval=settings.canary_interval,
                  request_timeout=settings.request_timeout)


def notifiers_from(settings: Settings) -> list[Notifier]:
    out: list[Notifier] = []
    if settings.telegram_token and settings.telegram_chat_id:
        out.append(Telegram(settings.telegram_token, settings.telegram_chat_id, settings.telegram_base_url))
    if settings.uptime_kuma_url:
        out.append(UptimeKuma(settings.uptime_kuma_url))
    return out


class Supervision:
    """The services that run beside the server; also a :class:`~slmnode.server.service.Service`."""

    def __init__(self, settings: Settings, events: EventLog, governor: ThermalGovernor, alerts: Alerts) -> None:
        self.settings, self.events, self.governor, self.alerts = settings, events, governor, alerts
        self.node: Node | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, node: Node) -> None:
        self.node = node
        r = node.metrics.registry
        self.g_temp = Gauge("slmnode_temperature_celsius", "Hottest thermal zone", registry=r)
        self.g_heat = Gauge("slmnode_thermal_state", "0 normal, 1 soft limit (slowed), 2 hard limit (no new work)", registry=r)
        self.c_events = Counter("slmnode_supervisor_events", "Supervisor events", ["kind"], registry=r)
        self.events.listeners.append(lambda ev: self.c_events.labels(ev.kind).inc())
        self.governor.apply.append(self._govern_all)
        self.governor.on_change.append(self._heat_changed)
        node.models.gates.append(self.governor.gate)
        node.health_extras.append(self._health)
        self._tasks.append(asyncio.create_task(self._thermal_loop()))  # its first reading at once
        if (keepalive := systemd.keepalive_period()) is not None:
            self._tasks.append(asyncio.create_task(self._keepalive_loop(*keepalive)))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.alerts.drain()
        await asyncio.to_thread(self.events.flush)
        systemd.notify("STOPPING=1")

    def _govern_all(self, threads: int | None, pace_ms: float) -> None:
        if self.node is None:
            return
        for slot in self.node.models.slots.values():
            govern = getattr(slot.engine, "govern", None)
            if govern is not None:
                govern(threads, pace_ms)

    def _heat_changed(self, old: Heat, new: Heat, celsius: float | None) -> None:
        kind = "thermal_ok" if new == Heat.NORMAL else f"thermal_{new.value}"
        self.events.record(kind, f"temperature {celsius} °C: {old.value} -> {new.value}", celsius=celsius)
        systemd.notify(f"STATUS=thermal {new.value} at {celsius} °C")

    def _health(self) -> dict[str, Any]:
        out = self.governor.health()
        if self.node is not None:
            out["engines"] = {s.model.name: {"state": s.engine.state.value, "restarts": getattr(s.engine, "restarts", 0),
                                             "pid": getattr(s.engine, "pid", None)}
                              for s in self.node.models.slots.values()}
        out["events_writable"] = self.events.writable
        return out

    async def _thermal_loop(self) -> None:
        """Read the temperature every ``interval`` (in a thread: vcgencmd may take seconds) and govern."""
        while True:
            try:
                await self.governor.step_async()
            except OSError:
                pass
            except Exception:  # a bug in a reading must not end thermal governing
                log.exception("thermal reading failed; the next one is in %.0f s", self.governor.interval)
            if self.governor.celsius is not None:
                self.g_temp.set(self.governor.celsius)
            self.g_heat.set(_HEAT_LEVEL[self.governor.state])
            await asyncio.sleep(self.governor.interval)

    def _loading(self) -> bool:
        node = self.node
        return node is not None and (not node.startup_done or node.models.loading)

    async def _keepalive_loop(self, period: float, watchdog: bool) -> None:
        """sd_notify keep-alive: sent while this event loop runs, whatever the engines' state.

        An engine that is loading, restarting or in error is handled by its supervisor; stopping
        the pings then would make systemd kill the node mid-recovery. A node whose loop is blocked
        or dead stops pinging, and systemd restarts it.
        """
        while True:
            message = systemd.keepalive_message(period=period, watchdog=watchdog, loading=self._loading())
            if message is not None:
                systemd.notify(message)
            await asyncio.sleep(period)


def _status(engine: SupervisedEngine) -> None:
    systemd.notify(f"STATUS={engine.model_name}: {engine.state.value}")


def supervised_node(settings: Settings, events: EventLog | None = None) -> Node:
    """A node whose engines are supervised, with its supervision service attached."""
    events = events or EventLog()
    policy = policy_from(settings)
    root = SysRoot(settings.hardware_root)
    threads = settings.threads or default_threads()

    def factory(model: ServedModel) -> SupervisedEngine:
        ws = worker_settings(settings, model)

        def make() -> EngineClient:
            return EngineClient(ws, model.name, model.info)
        kv_cells = ws.n_ctx * (ws.parallel if ws.kv_split else 1)  # split: every sequence its own context
        check = (memory_check(model.path, model.info.size_bytes, kv_cells, settings.kv_type, root=root, name=model.name)
                 if settings.memory_check else None)
        engine = SupervisedEngine(make, model.name, model.info, events=events, policy=policy, memory_check=check)
        engine.on_state.append(_status)
        return engine

    node = build_node(settings, factory=factory)  # type: ignore[arg-type]
    governor = ThermalGovernor(root, soft=settings.thermal_soft, hard=settings.thermal_hard,
                               interval=settings.thermal_interval, threads=threads)
    alerts = Alerts(notifiers_from(settings))
    events.listeners.append(alerts)
    node.services.append(Supervision(settings, events, governor, alerts))
    router = Router(load_router_config(settings.config_path))
    if settings.api_key:
        router.key_names.setdefault(settings.api_key, "default")
    node.router, node.api_keys = router, dict(router.key_names)
    node.services.append(router)
    return node
