"""ModelManager: load on demand, one resident model, keep_alive, never unload a model in use."""

from __future__ import annotations

import asyncio

import pytest

from slmnode.engine.client import EngineState
from slmnode.errors import ModelLoadError, ModelNotFound, RequestError
from slmnode.server.models import ModelManager, ServedModel, parse_keep_alive
from tests.unit.test_chat_format import GEMMA


class Eng:
    log: list[str] = []

    def __init__(self, model: ServedModel, fail: bool = False) -> None:
        self.model, self.fail = model, fail
        self.state, self.error, self.load_seconds, self.n_ctx = EngineState.STOPPED, None, None, 512
        self.queue_depth, self.busy = 0, False
        self.parked_prompts = self.parked_bytes = 0

    async def start(self) -> None:
        self.state = EngineState.LOADING
        await asyncio.sleep(0)
        if self.fail:
            self.state, self.error = EngineState.ERROR, "bad file"
            raise ModelLoadError("bad file")
        self.state, self.load_seconds = EngineState.READY, 0.01
        Eng.log.append(f"load {self.model.name}")

    async def stop(self) -> None:
        self.state = EngineState.STOPPED
        Eng.log.append(f"unload {self.model.name}")


class Store:
    def __init__(self, names: list[str]) -> None:
        self.names = names


def manager(extra: tuple[str, ...] = ("b", "c"), **kw: object) -> ModelManager:
    Eng.log = []
    default = ServedModel("a", "/a.gguf", GEMMA)
    m = ModelManager(default, lambda model: Eng(model, fail=model.name == "broken"), **kw)  # type: ignore[arg-type]
    m.available = lambda: [default, *(ServedModel(n, f"/{n}.gguf", GEMMA) for n in (*extra, "broken"))]  # type: ignore[method-assign]
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
        await _spin(lambda: not m.slots)
        assert Eng.log[-1] == "unload b"
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
