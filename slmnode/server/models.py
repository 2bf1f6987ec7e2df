"""Which models this node can serve, which are loaded, and loading them on demand.

A request names a model; :meth:`ModelManager.acquire` returns a :class:`Lease` on a loaded engine
for it, loading it first when needed. At most ``max_loaded`` models are resident: loading another
one waits until an idle resident model can be unloaded (never one that is serving a request).
A model unused for its ``keep_alive`` is unloaded (Ollama's semantics: ``-1`` keeps it, ``0``
unloads it right after the request). The node's default model is kept loaded unless told otherwise.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from slmnode.catalog.model_info import ModelInfo, model_info
from slmnode.catalog.store import ModelStore
from slmnode.engine.client import Engine, EngineState
from slmnode.errors import ModelLoadError, ModelNotFound, QueueFull, RequestError

_DURATION = re.compile(r"^(-?\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_keep_alive(value: str | float | None) -> float | None:
    """Seconds to keep a model loaded after use; None = forever. Accepts 300, "5m", "1h", "-1"."""
    if value is None or value == "":
        raise RequestError("keep_alive must not be empty")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(value.strip())
        if not m:
            raise RequestError(f"keep_alive '{value}' is not a duration like 300, \"5m\", \"1h\" or \"-1\"", param="keep_alive")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    return None if seconds < 0 else seconds


@dataclass
class ServedModel:
    name: str
    path: str
    info: ModelInfo
    sha256: str = ""
    source: str = ""
    added_at: float = field(default_factory=time.time)


@dataclass
class Slot:
    model: ServedModel
    engine: Engine
    keep_alive: float | None
    active: int = 0
    last_used: float = field(default_factory=time.time)
    timer: asyncio.TimerHandle | None = None

    @property
    def expires_at(self) -> float | None:
        return None if self.keep_alive is None else self.last_used + self.keep_alive


class Lease:
    """A model in use by one request; release it when the response is finished."""

    def __init__(self, manager: ModelManager, slot: Slot, fresh: bool) -> None:
        self._manager, self.slot, self._released = manager, slot, False
        self.fresh = fresh  # this request waited for the model to load
        self.model, self.engine = slot.model, slot.engine

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._manager._release(self.slot)


EngineFactory = Callable[[ServedModel], Engine]


class ModelManager:
    def __init__(self, default: ServedModel, factory: EngineFactory, *, store: ModelStore | None = None,
                 max_loaded: int = 1, keep_alive: float | None = 300.0, default_keep_alive: float | None = None,
                 max_queue: int | None = None) -> None:
        self.default, self.factory, self.store = default, factory, store
        self.max_loaded, self.keep_alive, self.default_keep_alive = max(1, max_loaded), keep_alive, default_keep_alive
        self.max_queue = max_queue  # requests allowed to wait beyond the ones running (None = unbounded)
        self.slots: dict[str, Slot] = {}
        self.last_error: str | None = None
        self.outstanding = 0  # requests admitted and not yet finished (running or waiting)
        self.gates: list[Callable[[], None]] = []  # admission checks (e.g. the thermal governor)
        self._cond = asyncio.Condition()

    # -- what exists -------------------------------------------------------------------------
    def available(self) -> list[ServedModel]:
        """The default model plus every model in the store."""
        out = {self.default.name: self.default}
        if self.store is not None:
            for m in self.store.list():
                if m.name not in out:
                    path = self.store.path_of(m)
                    out[m.name] = ServedModel(m.name, str(path), _cached_info(str(path)), m.sha256, m.source, m.added_at)
        return list(out.values())

    def resolve(self, requested: str | None) -> ServedModel:
        if requested in (None, "", "default", "embedded") or requested in (self.default.name, f"{self.default.name}:latest"):
            return self.default
        for m in self.available():
            if requested in (m.name, f"{m.name}:latest") or requested.removesuffix(":latest") == m.name:
                return m
        known = ", ".join(m.name for m in self.available())
        raise ModelNotFound(f"model '{requested}' not found; this node has: {known}. "
                            f"Get it with `slmnode pull {requested}` or `slmnode models import PATH --name {requested}`",
                            param="model")

    # -- state for /health and /metrics ------------------------------------------------------
    def loaded(self) -> list[Slot]:
        return [s for s in self.slots.values() if s.engine.state == EngineState.READY]

    @property
    def loading(self) -> bool:
        return any(s.engine.state == EngineState.LOADING for s in self.slots.values())

    @property
    def queue_depth(self) -> int:
        return sum(s.engine.queue_depth for s in self.slots.values())

    @property
    def busy(self) -> bool:
        return any(s.engine.busy for s in self.slots.values())

    @property
    def parked(self) -> tuple[int, int]:
        """Prompt caches parked in host RAM by the loaded engines: (count, bytes)."""
        engines = [s.engine for s in self.slots.values()]
        return sum(e.parked_prompts for e in engines), sum(e.parked_bytes for e in engines)

    def slot_of(self, name: str) -> Slot | None:
        return self.slots.get(name)

    # -- loading and unloading ---------------------------------------------------------------
    def _keep_alive_for(self, model: ServedModel, requested: float | None | str) -> float | None:
        if requested != "unset":
            return requested  # type: ignore[return-value]
        return self.default_keep_alive if model.name == self.default.name else self.keep_alive

    def admit(self) -> None:
        """Raise if new work may not start now: a gate says no, or the queue is full."""
        for gate in self.gates:
            gate()
        if self.max_queue is not None and self.outstanding >= self.max_queue + self.max_loaded:
            raise QueueFull(f"{self.outstanding} requests are already running or waiting (queue limit "
                            f"{self.max_queue}); retry after the Retry-After delay")

    async def acquire(self, requested: str | None, keep_alive: float | None | str = "unset") -> Lease:
        model = self.resolve(requested)
        self.admit()
        self.outstanding += 1
        try:
            return await self._acquire(model, keep_alive)
        except BaseException:
            self.outstanding -= 1
            raise

    async def _acquire(self, model: ServedModel, keep_alive: float | None | str) -> Lease:
        async with self._cond:
            slot = self.slots.get(model.name)
            fresh = False
            if slot is None or slot.engine.state in (EngineState.ERROR, EngineState.STOPPED):
                if slot is not None:
                    await self._unload(slot)
                while len(self.slots) >= self.max_loaded:
                    idle = sorted((s for s in self.slots.values() if s.active == 0), key=lambda s: s.last_used)
                    if idle:
                        await self._unload(idle[0])
                    else:
                        await self._cond.wait()
                slot = Slot(model, self.factory(model), self._keep_alive_for(model, keep_alive))
                self.slots[model.name] = slot
                try:
                    await slot.engine.start()
                    fresh = True
                    self.last_error = None
                except ModelLoadError as exc:
                    self.last_error = exc.message
                    self.slots.pop(model.name, None)
                    self._cond.notify_all()
                    raise
            elif keep_alive != "unset":
                slot.keep_alive = keep_alive  # type: ignore[assignment]
            slot.active += 1
            if slot.timer:
                slot.timer.cancel()
                slot.timer = None
            return Lease(self, slot, fresh)

    def _release(self, slot: Slot) -> None:
        self.outstanding -= 1
        slot.active -= 1
        slot.last_used = time.time()
        if slot.active == 0 and slot.keep_alive is not None and self.slots.get(slot.model.name) is slot:
            loop = asyncio.get_running_loop()
            slot.timer = loop.call_later(slot.keep_alive, lambda: loop.create_task(self._expire(slot)))
        loop = asyncio.get_running_loop()
        loop.create_task(self._notify())

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def _expire(self, slot: Slot) -> None:
        async with self._cond:
            if slot.active == 0 and self.slots.get(slot.model.name) is slot:
                await self._unload(slot)

    async def _unload(self, slot: Slot) -> None:
        if slot.timer:
            slot.timer.cancel()
        self.slots.pop(slot.model.name, None)
        await slot.engine.stop()
        self._cond.notify_all()

    async def unload(self, name: str) -> bool:
        async with self._cond:
            slot = self.slots.get(self.resolve(name).name)
            if slot is None or slot.active:
                return False
            await self._unload(slot)
            return True

    async def start_default(self) -> None:
        lease = await self.acquire(self.default.name)
        lease.release()

    async def stop_all(self) -> None:
        async with self._cond:
            for slot in list(self.slots.values()):
                await self._unload(slot)


@lru_cache(maxsize=64)
def _cached_info(path: str) -> ModelInfo:
    """Store blobs are content-addressed and never change, so their header is read once."""
    return model_info(path)
