"""A fake engine worker under the REAL SupervisedEngine, and a node built around it (no llama.cpp).

The supervisor, model manager, event log and Supervision service are the real ones; only the
worker process is replaced, so a test can crash it and hold its (re)load open as long as it likes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from slmnode.config import Settings
from slmnode.engine.client import EngineState, Event
from slmnode.engine.protocol import GenerationParams
from slmnode.errors import EngineCrashed, ModelLoadError
from slmnode.hardware.root import SysRoot
from slmnode.server.models import ModelManager, ServedModel
from slmnode.server.service import Node
from slmnode.supervisor.alerts import Alerts
from slmnode.supervisor.engine import Policy, SupervisedEngine
from slmnode.supervisor.events import EventLog
from slmnode.supervisor.node import Supervision
from slmnode.supervisor.thermal import ThermalGovernor
from tests.unit.test_chat_format import GEMMA


class FakeWorker:
    """Stands in for EngineClient: loads when its ``gate`` opens (at once without one), or fails."""

    def __init__(self, gate: asyncio.Event | None = None, fail: str | None = None) -> None:
        self.gate, self.fail = gate, fail
        self.state = EngineState.STOPPED
        self.error: str | None = None
        self.pid = 4242
        self.load_seconds: float | None = None
        self.n_ctx = 512
        self.queue_depth, self.busy = 0, False
        self.parked_prompts = self.parked_bytes = 0

    @property
    def last_heartbeat(self) -> float:
        return time.monotonic()  # never "hung": only crashes are simulated

    @property
    def last_progress(self) -> float:
        return time.monotonic()

    async def start(self) -> None:
        self.state = EngineState.LOADING
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            self.state, self.error = EngineState.ERROR, self.fail
            raise ModelLoadError(self.fail)
        self.state, self.load_seconds = EngineState.READY, 0.01

    async def stop(self) -> None:
        self.state = EngineState.STOPPED

    def crash(self) -> None:
        self.state, self.error = EngineState.ERROR, "the engine worker exited with code -9"

    def kill(self) -> None:
        self.crash()

    def govern(self, threads: int | None, pace_ms: float) -> None:
        pass

    async def generate(self, prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
        raise EngineCrashed("a fake worker generates nothing")
        yield  # pragma: no cover


class SupervisedFakeNode:
    """A node with one supervised model whose workers are ``workers``, taken in order (one per load)."""

    def __init__(self, tmp: Path, workers: list[FakeWorker], root: SysRoot | None = None) -> None:
        self.workers = list(workers)
        self.events = EventLog(tmp / "events.db")
        self.engine: SupervisedEngine | None = None
        self.states: asyncio.Queue[EngineState] = asyncio.Queue()
        policy = Policy(canary_interval=0, check_interval=0.01, backoff_initial=0.01, max_load_failures=1)

        def factory(model: ServedModel) -> SupervisedEngine:
            engine = SupervisedEngine(lambda: self.workers.pop(0), model.name, model.info,  # type: ignore[arg-type,return-value]
                                      events=self.events, policy=policy)
            engine.on_state.append(lambda e: self.states.put_nowait(e.state))
            self.engine = engine
            return engine

        manager = ModelManager(ServedModel("fake:1", "/x.gguf", GEMMA), factory)  # type: ignore[arg-type]
        self.node = Node(models=manager, settings=Settings())
        capture = tmp / "sysroot"  # an empty capture: no thermal zones, no vcgencmd
        capture.mkdir(exist_ok=True)
        self.governor = ThermalGovernor(root or SysRoot(capture), interval=3600)
        self.supervision = Supervision(self.node.settings, self.events, self.governor, Alerts([]))

    async def wait_state(self, state: EngineState, timeout: float) -> None:
        """Until the supervised engine reports ``state`` (events, not polling)."""
        while (await asyncio.wait_for(self.states.get(), timeout)) != state:
            pass
