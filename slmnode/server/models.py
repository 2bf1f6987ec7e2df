"""Which models this node can serve, which are loaded, and loading them on demand.

A request names a model; :meth:`ModelManager.acquire` returns a :class:`Lease` on a loaded engine
for it, loading it first when needed. At most ``max_loaded`` models are resident (a model counts
from the moment its load starts until its engine has stopped): loading another one waits until an
idle resident model can be unloaded (never one that is serving a request, or waited for).
A model unused for its ``keep_alive`` is unloaded (Ollama's semantics: ``-1`` keeps it, ``0``
unloads it right after the request). The node's default model is kept loaded unless told otherwise.

The manager's lock guards only its bookkeeping. A model loads in a task of its own (one per model,
shared by every request waiting for it) and an engine stops in a task of its own, so a load or an
unload never holds up requests for models that are already loaded. Times are on a monotonic clock
(a Pi has no RTC; the wall clock jumps when NTP first syncs).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from slmnode.catalog.model_info import ModelInfo, model_info
from slmnode.catalog.store import ModelStore
from slmnode.engine.client import Engine, EngineState
from slmnode.errors import ModelLoadError, ModelNotFound, QueueFull, RequestError, SlmnodeError

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^(-?\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

Clock = Callable[[], float]


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
    added_at: float = field(default_factory=time.time)  # wall clock: when it entered the store


@dataclass(eq=False)
class Slot:
    """A model resident (or loading) in this node."""

    model: ServedModel
    engine: Engine
    keep_alive: float | None
    active: int = 0  # requests using it or waiting for its load
    last_used: float = 0.0  # the manager's monotonic clock
    used_seq: int = 0  # orders uses that share a clock reading
    timer: asyncio.TimerHandle | None = None
    ready: asyncio.Future[None] | None = None  # the load: done when loaded, failed or cancelled

    @property
    def loaded(self) -> bool:
        """The load finished and succeeded (the engine may have died since)."""
        return self.ready is not None and self.ready.done() and not self.ready.cancelled() \
            and self.ready.exception() is None

    @property
    def expires_at(self) -> float | None:
        """When keep_alive unloads it, on the manager's monotonic clock (see :meth:`ModelManager.expires_at`)."""
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
                 max_queue: int | None = None, clock: Clock = time.monotonic) -> None:
        self.default, self.factory, self.store = default, factory, store
        self.max_loaded, self.keep_alive, self.default_keep_alive = max(1, max_loaded), keep_alive, default_keep_alive
        self.max_queue = max_queue  # requests allowed to wait beyond the ones running (None = unbounded)
        self.clock = clock
        self.slots: dict[str, Slot] = {}  # resident or loading, by model name
        self.last_error: str | None = None
        self.outstanding = 0  # requests admitted and not yet finished (running or waiting)
        self.gates: list[Callable[[], None]] = []  # admission checks (e.g. the thermal governor)
        self._cond = asyncio.Condition()
        self._stopping: dict[Slot, asyncio.Task[None]] = {}  # unloaded, engine still stopping (holds its RAM)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._seq = itertools.count(1)
        self._unreadable: set[str] = set()  # store models whose file could not be read (logged once)

    # -- what exists -------------------------------------------------------------------------
    def available(self) -> list[ServedModel]:
        """The default model plus every readable model in the store (an unreadable one is logged and skipped)."""
        out = {self.default.name: self.default}
        if self.store is not None:
            for m in self.store.list():
                if m.name in out:
                    continue
                path = self.store.path_of(m)
                try:
                    info = _cached_info(str(path))
                except SlmnodeError as exc:
                    if str(path) not in self._unreadable:
                        self._unreadable.add(str(path))
                        log.warning("model %s is not served: %s (`slmnode doctor` says how to fix it)", m.name, exc)
                    continue
                out[m.name] = ServedModel(m.name, str(path), info, m.sha256, m.source, m.added_at)
        return list(out.values())

    def resolve(self, requested: str | None) -> ServedModel:
        if requested is None or requested in ("", "default", "embedded") \
                or requested in (self.default.name, f"{self.default.name}:latest"):
            return self.default
        available = self.available()
        for m in available:
            if requested in (m.name, f"{m.name}:latest") or requested.removesuffix(":latest") == m.name:
                return m
        known = ", ".join(m.name for m in available)
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

    def expires_at(self, slot: Slot) -> float | None:
        """When keep_alive unloads ``slot``, as a wall-clock timestamp (for display)."""
        deadline = slot.expires_at
        return None if deadline is None else time.time() + (deadline - self.clock())

    # -- admission ---------------------------------------------------------------------------
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
            slot = await self._slot_for(model, keep_alive)
            slot.active += 1
            self._disarm(slot)
        assert slot.ready is not None
        fresh = not slot.ready.done()
        try:
            await asyncio.shield(slot.ready)  # a request that goes away does not cancel the load
        except BaseException:
            slot.active -= 1
            self._idle(slot)
            raise
        return Lease(self, slot, fresh)

    async def _slot_for(self, model: ServedModel, keep_alive: float | None | str) -> Slot:
        """The slot of ``model``, starting its load if it has none (called with the lock held)."""
        while True:
            slot = self.slots.get(model.name)
            if slot is not None and slot.loaded and slot.engine.state in (EngineState.ERROR, EngineState.STOPPED):
                self._unload(slot)  # its worker died: load it afresh
                slot = None
            if slot is not None:
                if keep_alive != "unset":
                    slot.keep_alive = keep_alive  # type: ignore[assignment]
                return slot
            if len(self.slots) + len(self._stopping) < self.max_loaded:
                slot = Slot(model, self.factory(model), self._keep_alive_for(model, keep_alive))
                self._touch(slot)
                self.slots[model.name] = slot
                slot.ready = self._spawn(self._load(slot))
                slot.ready.add_done_callback(functools.partial(self._loaded, slot))
                return slot
            idle = sorted((s for s in self.slots.values() if s.active == 0 and s.ready is not None and s.ready.done()),
                          key=lambda s: (s.last_used, s.used_seq))
            if idle and not self._stopping:  # (an engine that is stopping already makes room: wait for it)
                self._unload(idle[0])  # its room is free once its engine has stopped
            await self._cond.wait()

    # -- loading and unloading ---------------------------------------------------------------
    async def _load(self, slot: Slot) -> None:
        name = slot.model.name
        try:
            await slot.engine.start()
        except BaseException as exc:
            if self.slots.get(name) is slot:
                del self.slots[name]
            if isinstance(exc, ModelLoadError):
                self.last_error = exc.message
            elif isinstance(exc, Exception):
                log.exception("loading model %s failed unexpectedly", name)
                self._unload(slot)  # whatever it started must not linger (it counts until stopped)
                error = ModelLoadError(f"loading model {name} failed: {exc}")
                self.last_error = error.message
                self._wake()
                raise error from exc
            self._wake()
            raise
        self.last_error = None
        self._touch(slot)

    def _loaded(self, slot: Slot, _: asyncio.Future[None]) -> None:
        self._idle(slot)  # it may have loaded with no one waiting for it any more

    def _unload(self, slot: Slot) -> asyncio.Task[None]:
        """Take ``slot`` out of service and stop its engine in the background; it counts until stopped."""
        self._disarm(slot)
        if self.slots.get(slot.model.name) is slot:
            del self.slots[slot.model.name]
        task = self._stopping.get(slot)
        if task is None:
            task = self._stopping[slot] = self._spawn(self._stop(slot))
        return task

    async def _stop(self, slot: Slot) -> None:
        try:
            if slot.ready is not None and not slot.ready.done():
                slot.ready.cancel()
                await asyncio.gather(slot.ready, return_exceptions=True)
            await slot.engine.stop()
        except Exception:
            log.exception("stopping model %s failed", slot.model.name)
        finally:
            self._stopping.pop(slot, None)
            self._wake()

    def _release(self, slot: Slot) -> None:
        self.outstanding -= 1
        slot.active -= 1
        self._touch(slot)
        self._idle(slot)

    def _touch(self, slot: Slot) -> None:
        slot.last_used, slot.used_seq = self.clock(), next(self._seq)

    def _idle(self, slot: Slot) -> None:
        """Called when a slot may have become idle: arm its keep_alive timer, wake waiters for room."""
        if slot.active == 0 and slot.keep_alive is not None and slot.loaded and self.slots.get(slot.model.name) is slot:
            self._disarm(slot)
            slot.timer = asyncio.get_running_loop().call_later(slot.keep_alive, self._expire, slot)
        self._wake()

    def _disarm(self, slot: Slot) -> None:
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None

    def _expire(self, slot: Slot) -> None:
        slot.timer = None
        if slot.active == 0 and self.slots.get(slot.model.name) is slot:
            self._unload(slot)

    def _wake(self) -> None:
        """Wake every acquire waiting for room (the lock can't be taken here: a task does it)."""
        self._spawn(self._notify())

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a load nobody waits for any more is not an "unhandled" error

    async def unload(self, name: str) -> bool:
        """Unload a model now (Ollama's keep_alive 0); False when it is not loaded or in use."""
        async with self._cond:
            slot = self.slots.get(self.resolve(name).name)
            if slot is None or slot.active or not slot.loaded:
                return False
            task = self._unload(slot)
        await asyncio.shield(task)
        return True

    async def start_default(self) -> None:
        lease = await self.acquire(self.default.name)
        lease.release()

    async def stop_all(self) -> None:
        async with self._cond:
            for slot in list(self.slots.values()):
                self._unload(slot)
            stopping = list(self._stopping.values())
        await asyncio.gather(*stopping, return_exceptions=True)


@lru_cache(maxsize=64)
def _cached_info(path: str) -> ModelInfo:
    """Store blobs are content-addressed and never change, so their header is read once."""
    return model_info(path)
