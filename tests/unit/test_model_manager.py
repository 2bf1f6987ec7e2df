"""ModelManager: load on demand, one resident model, keep_alive, never unload a model in use,
and a load or unload of one model never holds up requests for another."""

from __future__ import annotations

import asyncio
import time

import pytest

from slmnode.engine.client import EngineState
from slmnode.errors import ModelLoadError, ModelNotFound, RequestError
from slmnode.server.models import ModelManager, ServedModel, parse_keep_alive
from tests.unit.test_chat_format import GEMMA


class Eng:
    log: list[str] = []
    # by model name: start()/stop() wait for the test to set these (a slow load, a slow unload)
    start_gates: dict[str, asyncio.Event] = {}
    stop_gates: dict[str, asyncio.Event] = {}
    made: list[str] = []

    def __init__(self, model: ServedModel, fail: bool = False) -> None:
        self.model, self.fail = model, fail
        self.state, self.error, self.load_seconds, self.n_ctx = EngineState.STOPPED, None, None, 512
        self.queue_depth, self.busy = 0, False
        self.parked_prompts = self.parked_bytes = 0
        Eng.made.append(model.name)

    async def start(self) -> None:
        self.state = EngineState.LOADING
        await asyncio.sleep(0)
        if self.model.name in Eng.start_gates:
            Eng.log.append(f"loading {self.model.name}")
            await Eng.start_gates[self.model.name].wait()
        if self.fail:
            self.state, self.error = EngineState.ERROR, "bad file"
            raise ModelLoadError("bad file")
        if self.model.name == "buggy":
            raise RuntimeError("a bug in the engine")
        self.state, self.load_seconds = EngineState.READY, 0.01
        Eng.log.append(f"load {self.model.name}")

    async def stop(self) -> None:
        if self.model.name in Eng.stop_gates:
            Eng.log.append(f"unloading {self.model.name}")
            await Eng.stop_gates[self.model.name].wait()
        self.state = EngineState.STOPPED
        Eng.log.append(f"unload {self.model.name}")


class Store:
    def __init__(self, names: list[str]) -> None:
        self.names = names


def manager(extra: tuple[str, ...] = ("b", "c"), **kw: object) -> ModelManager:
    Eng.log, Eng.made, Eng.start_gates, Eng.stop_gates = [], [], {}, {}
    default = ServedModel("a", "/a.gguf", GEMMA)
    m = ModelManager(default, lambda model: Eng(model, fail=model.name == "broken"), **kw)  # type: ignore[arg-type]
    m.available = lambda: [default, *(ServedModel(n, f"/{n}.gguf", GEMMA) for n in (*extra, "broken", "buggy"))]  # type: ignore[method-assign]
    return m


async def _spin(cond: object) -> None:
    for _ in range(1000):
        if cond():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


def test_switch_unloads_the_idle_model_first() -> None:
    async def go() -> None:
        m = manager()
        (await m.acquire(None)).release()
        lease = await m.acquire("b")
        assert [s.model.name for s in m.loaded()] == ["b"] and lease.fresh
        lease.release()
        assert Eng.log == ["load a", "unload a", "load b"]
    asyncio.run(go())


def test_switch_waits_for_the_model_in_use() -> None:
    async def go() -> None:
        m = manager()
        busy = await m.acquire("a")
        waiter = asyncio.create_task(m.acquire("b"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not waiter.done() and Eng.log == ["load a"]  # a is serving: not unloaded
        busy.release()
        lease = await asyncio.wait_for(waiter, 5)
        assert Eng.log == ["load a", "unload a", "load b"]
        lease.release()
    asyncio.run(go())


def test_keep_alive_zero_unloads_after_use_and_default_stays() -> None:
    async def go() -> None:
        m = manager(keep_alive=0.0)
        (await m.acquire("a")).release()
        lease = await m.acquire("b")  # evicts a (max 1)
        lease.release()
        await _spin(lambda: not m.slots and Eng.log[-1] == "unload b")
        m2 = manager(max_loaded=2, keep_alive=0.0)
        (await m2.acquire("a")).release()
        for _ in range(10):
            await asyncio.sleep(0)
        assert [s.model.name for s in m2.loaded()] == ["a"]  # the default is kept (default_keep_alive None)
    asyncio.run(go())


def test_two_resident_models_when_allowed() -> None:
    async def go() -> None:
        m = manager(max_loaded=2)
        (await m.acquire("a")).release()
        (await m.acquire("b")).release()
        assert sorted(s.model.name for s in m.loaded()) == ["a", "b"]
        (await m.acquire("c")).release()  # evicts the least recently used
        assert sorted(s.model.name for s in m.loaded()) == ["b", "c"]
    asyncio.run(go())


def test_failed_load_is_reported_and_not_resident() -> None:
    async def go() -> None:
        m = manager()
        with pytest.raises(ModelLoadError):
            await m.acquire("broken")
        assert m.last_error == "bad file" and not m.slots
        (await m.acquire("a")).release()
        assert m.last_error is None
    asyncio.run(go())


def test_unknown_model_names_how_to_get_it() -> None:
    with pytest.raises(ModelNotFound, match="slmnode pull llama9"):
        manager().resolve("llama9")


@pytest.mark.parametrize("value,seconds", [(300, 300.0), ("5m", 300.0), ("1h", 3600.0), ("30s", 30.0), ("-1", None),
                                           (-1, None), ("0", 0.0), ("1.5m", 90.0), ("250ms", 0.25)])
def test_parse_keep_alive(value: object, seconds: float | None) -> None:
    assert parse_keep_alive(value) == seconds  # type: ignore[arg-type]


def test_parse_keep_alive_rejects_nonsense() -> None:
    with pytest.raises(RequestError, match="duration"):
        parse_keep_alive("soon")


async def _settle() -> None:
    """Let every runnable task run for a while (a fixed number of loop turns, not a time)."""
    for _ in range(50):
        await asyncio.sleep(0)


def test_a_loaded_model_answers_while_another_loads() -> None:
    async def go() -> None:
        m = manager(max_loaded=2)
        (await m.acquire("a")).release()
        gate = Eng.start_gates["b"] = asyncio.Event()
        loading = asyncio.create_task(m.acquire("b"))
        await _spin(lambda: "loading b" in Eng.log)
        other = asyncio.create_task(m.acquire("a"))
        await _spin(other.done)  # before: stuck behind the manager's lock until b had loaded
        lease = other.result()
        assert lease.model.name == "a" and not lease.fresh and not loading.done() and m.loading
        lease.release()
        gate.set()
        b = await loading
        assert b.fresh and b.engine.state == EngineState.READY
        b.release()
        assert m.outstanding == 0
    asyncio.run(go())


def test_a_slow_unload_does_not_hold_up_a_loaded_model() -> None:
    async def go() -> None:
        m = manager(max_loaded=2)
        (await m.acquire("a")).release()
        (await m.acquire("b")).release()
        gate = Eng.stop_gates["b"] = asyncio.Event()
        unloading = asyncio.create_task(m.unload("b"))  # Ollama's keep_alive 0
        await _spin(lambda: "unloading b" in Eng.log)
        other = asyncio.create_task(m.acquire("a"))
        await _spin(other.done)  # before: waited for b's engine to stop (up to 5 s for a real one)
        other.result().release()
        assert not unloading.done()
        gate.set()
        assert await unloading and [s.model.name for s in m.loaded()] == ["a"]
    asyncio.run(go())


def test_a_switch_loads_only_after_the_evicted_engine_has_stopped() -> None:
    async def go() -> None:
        m = manager()  # one resident model: two at once would not fit the RAM
        (await m.acquire("a")).release()
        gate = Eng.stop_gates["a"] = asyncio.Event()
        switching = asyncio.create_task(m.acquire("b"))
        await _spin(lambda: "unloading a" in Eng.log)
        await _settle()
        assert Eng.made == ["a"] and not switching.done()  # b not even created while a still holds its RAM
        gate.set()
        (await switching).release()
        assert Eng.log == ["load a", "unloading a", "unload a", "load b"]
    asyncio.run(go())


def test_waiters_share_one_load_and_a_waiter_that_leaves_does_not_cancel_it() -> None:
    async def go() -> None:
        m = manager()
        gate = Eng.start_gates["b"] = asyncio.Event()
        first = asyncio.create_task(m.acquire("b"))
        second = asyncio.create_task(m.acquire("b"))
        await _spin(lambda: "loading b" in Eng.log)
        first.cancel()  # its client went away mid-load
        await asyncio.gather(first, return_exceptions=True)
        assert first.cancelled()
        gate.set()
        lease = await second
        assert lease.engine.state == EngineState.READY and lease.fresh  # before: a lease on an engine never loaded
        assert Eng.made == ["b"] and Eng.log.count("load b") == 1
        lease.release()
        assert m.outstanding == 0 and m.slots["b"].active == 0
    asyncio.run(go())


def test_a_load_no_one_waits_for_any_more_still_gets_its_keep_alive() -> None:
    async def go() -> None:
        m = manager(keep_alive=0.0)
        gate = Eng.start_gates["b"] = asyncio.Event()
        waiter = asyncio.create_task(m.acquire("b"))
        await _spin(lambda: "loading b" in Eng.log)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        gate.set()
        await _spin(lambda: Eng.log[-1:] == ["unload b"] and not m.slots)  # loaded, idle, expired
    asyncio.run(go())


def test_an_unexpected_load_failure_is_a_load_error_and_frees_the_slot() -> None:
    async def go() -> None:
        m = manager()
        with pytest.raises(ModelLoadError, match="loading model buggy failed: a bug in the engine"):
            await m.acquire("buggy")
        assert "buggy" not in m.slots and m.last_error and m.outstanding == 0
        (await asyncio.wait_for(m.acquire("a"), 30)).release()  # before: a slot stuck "loading" blocked this
    asyncio.run(go())


def test_least_recently_used_is_evicted_even_when_the_wall_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    wall = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: wall[0])

    async def go() -> None:
        m = manager(max_loaded=2)
        (await m.acquire("a")).release()
        wall[0] -= 3600  # NTP corrects a Pi's clock (no RTC) backwards
        (await m.acquire("b")).release()
        (await m.acquire("c")).release()  # evicts a, the least recently used
        assert sorted(s.model.name for s in m.loaded()) == ["b", "c"]
    asyncio.run(go())


def test_keep_alive_runs_on_the_injected_monotonic_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    mono = [100.0]
    wall = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: wall[0])

    async def go() -> None:
        m = manager(keep_alive=300.0, clock=lambda: mono[0])
        (await m.acquire("b")).release()
        slot = m.slots["b"]
        assert slot.expires_at == 400.0
        mono[0] += 60
        wall[0] += 86400  # the wall clock jumps a day (first NTP sync): 240 s are still left
        assert m.expires_at(slot) == wall[0] + 240
    asyncio.run(go())


def test_a_waiter_evicts_one_model_not_every_idle_one() -> None:
    async def go() -> None:
        m = manager(max_loaded=2)
        (await m.acquire("a")).release()
        (await m.acquire("b")).release()
        gate = Eng.stop_gates["a"] = asyncio.Event()
        switching = asyncio.create_task(m.acquire("c"))
        await _spin(lambda: "unloading a" in Eng.log)
        (await m.acquire("b")).release()  # other traffic wakes the waiter while a is still stopping
        await _settle()
        assert "b" in m.slots and not switching.done()
        gate.set()
        (await switching).release()
        assert sorted(s.model.name for s in m.loaded()) == ["b", "c"]
    asyncio.run(go())
