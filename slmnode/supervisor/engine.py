"""A supervised engine: the same interface as :class:`EngineClient`, plus watchdog and restarts.

- **Crash** (the worker exits): requests it had started end with 503 ``engine_crashed``; requests
  still queued wait for the restart and then run. The worker restarts with exponential backoff.
- **Hang**: no heartbeat for ``hang_timeout`` (SIGSTOP, a frozen box), or no progress on the
  active request for ``hang_timeout``, or a failed canary → the worker is killed and restarted.
- **Canary**: when idle, every ``canary_interval`` a one-token greedy generation proves the engine
  really generates (a 200 from /health alone proves nothing).
- **Memory**: before every load the model's RAM need (the planner's estimate; at least file size +
  KV cache + margin) is checked against available RAM; a refusal names the numbers.
- A model that cannot load ends in state ``error`` with the reason, not a restart spin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from slmnode.catalog.model_info import ModelInfo
from slmnode.engine.client import Embeddings, EngineClient, EngineState, Event, Started
from slmnode.engine.protocol import GenerationParams
from slmnode.errors import EngineCrashed, EngineNotReady, ModelLoadError, NotEnoughMemory, RequestTimeout
from slmnode.supervisor.events import EventLog

_CANARY = GenerationParams(max_tokens=1, temperature=0.0)


@dataclass(frozen=True)
class Policy:
    hang_timeout: float = 30.0  # seconds without heartbeat / progress
    canary_interval: float = 120.0  # seconds between canaries when idle (0 = off)
    canary_timeout: float = 30.0
    request_timeout: float = 600.0  # per request, seconds (0 = none)
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_load_failures: int = 3  # consecutive failed (re)loads before state error
    check_interval: float = 0.5


MemoryCheck = Callable[[], None]  # raises NotEnoughMemory


class SupervisedEngine:
    def __init__(self, make: Callable[[], EngineClient], model_name: str, info: ModelInfo, *,
                 events: EventLog, policy: Policy = Policy(), memory_check: MemoryCheck | None = None) -> None:
        self._make, self.model_name, self.info = make, model_name, info
        self.events, self.policy, self.memory_check = events, policy, memory_check
        self.inner: EngineClient | None = None
        self.state = EngineState.STOPPED
        self.error: str | None = None
        self.restarts = 0
        self.last_canary_ok: float | None = None
        self._ready = asyncio.Event()
        self._monitor: asyncio.Task[None] | None = None
        self._stopping = False
        self.on_state: list[Callable[[SupervisedEngine], None]] = []

    # -- the Engine interface ------------------------------------------------------------------
    @property
    def load_seconds(self) -> float | None:
        return self.inner.load_seconds if self.inner else None

    @property
    def n_ctx(self) -> int:
        return self.inner.n_ctx if self.inner else 0

    @property
    def queue_depth(self) -> int:
        return self.inner.queue_depth if self.inner else 0

    @property
    def busy(self) -> bool:
        return bool(self.inner and self.inner.busy)

    @property
    def pid(self) -> int | None:
        return self.inner.pid if self.inner else None

    @property
    def parked_prompts(self) -> int:
        return self.inner.parked_prompts if self.inner else 0

    @property
    def parked_bytes(self) -> int:
        return self.inner.parked_bytes if self.inner else 0

    def _set(self, state: EngineState, error: str | None = None) -> None:
        self.state, self.error = state, error
        if state == EngineState.READY:
            self._ready.set()
        else:
            self._ready.clear()
        for cb in self.on_state:
            cb(self)

    async def _load_once(self) -> None:
        if self.memory_check is not None:  # /proc/meminfo and the GGUF header: off the event loop (an SD card is slow)
            await asyncio.to_thread(self.memory_check)
        self.inner = self._make()
        await self.inner.start()

    async def start(self) -> None:
        self._stopping = False
        self._set(EngineState.LOADING)
        try:
            await self._load_once()
        except ModelLoadError as exc:
            self._set(EngineState.ERROR, exc.message)
            self.events.record("load_failed", exc.message, model=self.model_name)
            raise
        self._set(EngineState.READY)
        self.events.record("loaded", f"model loaded in {self.load_seconds:.2f} s", model=self.model_name,
                           load_seconds=self.load_seconds, pid=self.pid)
        self._monitor = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        if self.inner is not None:
            await self.inner.stop()
        self._set(EngineState.STOPPED)

    def govern(self, threads: int | None, pace_ms: float) -> None:
        if self.inner is not None:
            self.inner.govern(threads, pace_ms)

    async def count_tokens(self, text: str) -> int:
        if self.state != EngineState.READY or self.inner is None:
            raise EngineNotReady(f"the model is not available (state {self.state.value}); retry shortly")
        return await self.inner.count_tokens(text)

    async def embed(self, inputs: Sequence[str | list[int]], truncate: bool) -> Embeddings:
        if self.state != EngineState.READY or self.inner is None:
            raise EngineNotReady(f"the model is not available (state {self.state.value}); retry shortly")
        timeout = self.policy.request_timeout or None
        try:
            return await asyncio.wait_for(self.inner.embed(inputs, truncate), timeout)
        except TimeoutError as exc:
            raise RequestTimeout(f"the embedding ran past its {timeout:.0f} s limit") from exc

    async def generate(self, prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
        timeout = self.policy.request_timeout or None
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            if self.state == EngineState.LOADING:  # restarting: queued work waits for it
                try:
                    await asyncio.wait_for(self._ready.wait(), timeout=self._left(deadline))
                except TimeoutError as exc:
                    raise RequestTimeout("the engine did not come back within the request's time limit") from exc
            if self.state != EngineState.READY or self.inner is None:
                raise EngineNotReady(f"the model is not available (state {self.state.value}"
                                     f"{': ' + self.error if self.error else ''})")
            if self.inner.state in (EngineState.ERROR, EngineState.STOPPED):
                # the worker just died and the watcher hasn't noticed yet: wait for its restart
                self._set(EngineState.LOADING)
                continue
            started = False
            gen = self.inner.generate(prompt, params)
            try:
                while True:
                    try:
                        ev = await asyncio.wait_for(gen.__anext__(), timeout=self._left(deadline))
                    except StopAsyncIteration:
                        return
                    except TimeoutError as exc:
                        raise RequestTimeout(f"the request ran past its {timeout:.0f} s limit; it was stopped") from exc
                    if isinstance(ev, Started):
                        started = True
                    yield ev
            except EngineCrashed:
                if started:
                    raise
                # the worker died before this request started: run it on the restarted worker
                await asyncio.sleep(0)
                if self.state == EngineState.READY:
                    self._set(EngineState.LOADING)  # the watcher is about to notice and restart
                continue
            finally:
                await gen.aclose()  # type: ignore[attr-defined]

    @staticmethod
    def _left(deadline: float | None) -> float | None:
        return None if deadline is None else max(0.001, deadline - time.monotonic())

    # -- watching ------------------------------------------------------------------------------
    def _hung(self) -> str | None:
        inner, now = self.inner, time.monotonic()
        if inner is None:
            return None
        if now - inner.last_heartbeat > self.policy.hang_timeout:
            return f"no heartbeat from the engine for {now - inner.last_heartbeat:.0f} s"
        if inner.busy and now - inner.last_progress > self.policy.hang_timeout:
            return f"the active request made no progress for {now - inner.last_progress:.0f} s"
        return None

    async def _canary(self) -> str | None:
        assert self.inner is not None
        try:
            async def run() -> None:
                async for _ in self.inner.generate("Hello", _CANARY):  # type: ignore[union-attr]
                    pass
            await asyncio.wait_for(run(), self.policy.canary_timeout)
        except TimeoutError:
            return f"canary generation did not finish in {self.policy.canary_timeout:.0f} s"
        except EngineCrashed:
            return None  # the crash path handles it
        self.last_canary_ok = time.time()
        return None

    async def _watch(self) -> None:
        last_canary = time.monotonic()
        while not self._stopping and self.state != EngineState.ERROR:
            await asyncio.sleep(self.policy.check_interval)
            inner = self.inner
            if inner is None:
                continue
            reason = None
            if inner.state in (EngineState.ERROR, EngineState.STOPPED):
                reason = inner.error or "the engine worker exited"
                kind = "crash"
            elif (hang := self._hung()) is not None:
                reason, kind = hang, "hang"
                inner.kill()
            elif (self.policy.canary_interval and not inner.busy and inner.queue_depth == 0
                  and time.monotonic() - last_canary > self.policy.canary_interval):
                last_canary = time.monotonic()
                if (fail := await self._canary()) is not None:
                    reason, kind = fail, "hang"
                    inner.kill()
            if reason is not None:
                self.events.record(kind, reason, model=self.model_name, pid=inner.pid)
                await self._restart()

    async def _restart(self) -> None:
        self._set(EngineState.LOADING, None)
        if self.inner is not None:
            await self.inner.stop()
        delay, failures = self.policy.backoff_initial, 0
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._load_once()
            except NotEnoughMemory as exc:
                self._set(EngineState.ERROR, exc.message)
                self.events.record("load_failed", exc.message, model=self.model_name)
                return
            except ModelLoadError as exc:
                failures += 1
                self.events.record("load_failed", exc.message, model=self.model_name, attempt=failures)
                if failures >= self.policy.max_load_failures:
                    self._set(EngineState.ERROR, exc.message)
                    return
                delay = min(delay * 2, self.policy.backoff_max)
                continue
            self.restarts += 1
            self._set(EngineState.READY)
            self.events.record("restarted", f"engine restarted (restart #{self.restarts})", model=self.model_name,
                               pid=self.pid, load_seconds=self.load_seconds)
            return
