"""The HTTP side's handle on the engine worker process (no llama_cpp import here).

:class:`EngineClient` spawns ``python -m slmnode.engine.worker``, tracks its state
(stopped → loading → ready | error), and turns each request into a stream of events. A worker
that dies fails its in-flight requests with :class:`EngineCrashed`; the HTTP process lives on.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import sys
import time
from array import array
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from slmnode.catalog.model_info import ModelInfo
from slmnode.engine.protocol import GenerationParams, Usage, encode, error_from_wire
from slmnode.engine.settings import WorkerSettings
from slmnode.errors import EngineCrashed, EngineError, EngineNotReady, ModelLoadError


class EngineState(str, Enum):
    STOPPED = "stopped"
    LOADING = "loading"
    READY = "ready"
    ERROR = "error"


_ALLOWED: dict[EngineState, set[EngineState]] = {
    EngineState.STOPPED: {EngineState.LOADING},
    EngineState.LOADING: {EngineState.READY, EngineState.ERROR, EngineState.STOPPED},
    EngineState.READY: {EngineState.LOADING, EngineState.ERROR, EngineState.STOPPED},
    EngineState.ERROR: {EngineState.LOADING, EngineState.STOPPED},
}


@dataclass(frozen=True)
class Started:
    prompt_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Done:
    finish_reason: str
    usage: Usage
    stop: str | None = None  # the stop string that ended the text, if one did


Event = Started | Token | Done


class Engine(Protocol):
    """What the server needs from an engine (the real client, or a fake in unit tests)."""

    state: EngineState
    model_name: str
    info: ModelInfo
    error: str | None
    load_seconds: float | None
    n_ctx: int
    parked_prompts: int  # prompt caches the worker holds in host RAM (slmnode.engine.prompt_cache)
    parked_bytes: int

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def generate(self, prompt: str, params: GenerationParams) -> AsyncIterator[Event]: ...
    async def count_tokens(self, text: str) -> int: ...  # ``text`` tokenized as a prompt is (with BOS)
    async def embed(self, inputs: Sequence[str | list[int]], truncate: bool) -> Embeddings: ...
    @property
    def queue_depth(self) -> int: ...
    @property
    def busy(self) -> bool: ...


@dataclass(frozen=True)
class Embeddings:
    """Unit-length vectors of an embed op's inputs, in order, and the tokens each was embedded from."""

    vectors: list[list[float]]
    token_counts: list[int]
    pooling: str  # mean | cls | last (see slmnode.engine.embed)


@dataclass
class _Embedding:
    done: asyncio.Future[dict[str, Any]]
    vectors: dict[int, tuple[list[float], int]] = field(default_factory=dict)


@dataclass
class _Pending:
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    started: bool = False


class EngineClient:
    def __init__(self, settings: WorkerSettings, model_name: str, info: ModelInfo) -> None:
        self.settings, self.model_name, self.info = settings, model_name, info
        self.state = EngineState.STOPPED
        self.error: str | None = None
        self.load_seconds: float | None = None
        self.n_ctx = settings.n_ctx
        self.system_info = ""
        self.pid: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, _Pending] = {}
        self._counts: dict[str, asyncio.Future[dict[str, Any]]] = {}  # tokenize requests, by id
        self._embeds: dict[str, _Embedding] = {}  # embed requests, by id
        self._loaded: asyncio.Future[dict[str, Any]] | None = None
        self._ids = itertools.count(1)
        self._active: set[str] = set()  # ids the worker is generating for (batched), by its own events
        self.last_heartbeat = time.monotonic()  # last sign of life from the worker process
        self.parked_prompts = self.parked_bytes = 0  # as of the worker's last finished request
        self.last_progress = time.monotonic()  # last event of the active request

    # -- state -----------------------------------------------------------------------------------
    def _to(self, new: EngineState) -> None:
        if new not in _ALLOWED[self.state]:
            raise EngineError(f"engine cannot go from {self.state.value} to {new.value}")
        self.state = new

    @property
    def queue_depth(self) -> int:
        return sum(1 for p in self._pending.values() if not p.started)

    @property
    def busy(self) -> bool:
        """True while the worker generates (also for a request whose client has gone)."""
        return bool(self._active)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Spawn the worker and wait until the model is loaded (or failed to load)."""
        self._to(EngineState.LOADING)
        self.error = None
        t0 = time.perf_counter()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "slmnode.engine.worker", self.settings.model_dump_json(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env, limit=1 << 20,
        )
        self.pid = self._proc.pid
        self._loaded = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_loop(self._proc))
        msg = await self._loaded
        if msg["ev"] == "load_failed":
            self.error = msg["message"]
            self._to(EngineState.ERROR)
            raise ModelLoadError(msg["message"])
        self.load_seconds = time.perf_counter() - t0
        self.n_ctx = msg["n_ctx"]
        self.system_info = msg.get("system_info", "")
        self._to(EngineState.READY)

    async def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                proc.stdin.write(encode({"op": "shutdown"}))  # type: ignore[union-attr]
                proc.stdin.close()  # type: ignore[union-attr]
                await asyncio.wait_for(proc.wait(), 5)
            except (TimeoutError, OSError):
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.state != EngineState.STOPPED:
            self._to(EngineState.STOPPED)

    async def _read_loop(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            ev = msg.get("ev")
            now = time.monotonic()
            self.last_heartbeat = now
            if ev == "heartbeat":
                continue
            if ev in ("loaded", "load_failed"):
                if self._loaded and not self._loaded.done():
                    self._loaded.set_result(msg)
                continue
            if ev == "tokens":
                fut = self._counts.pop(msg.get("id", ""), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                continue
            if ev in ("embedding", "embedded"):
                emb = self._embeds.get(msg.get("id", ""))
                if emb is not None and ev == "embedding":
                    vec = array("f")
                    vec.frombytes(base64.b64decode(msg["vector"]))
                    if sys.byteorder != "little":
                        vec.byteswap()
                    emb.vectors[int(msg["index"])] = (vec.tolist(), int(msg["tokens"]))
                elif emb is not None and not emb.done.done():
                    emb.done.set_result(msg)
                continue
            if ev in ("started", "progress"):
                self._active.add(msg.get("id", ""))
                self.last_progress = now
            elif ev == "token":
                self.last_progress = now
            elif ev in ("done", "error"):
                self._active.discard(msg.get("id", ""))
                self.last_progress = now
                if "parked_bytes" in msg:
                    self.parked_prompts, self.parked_bytes = int(msg["parked"]), int(msg["parked_bytes"])
            pending = self._pending.get(msg.get("id", ""))
            if pending is not None and ev != "progress":
                if ev == "started":
                    pending.started = True
                pending.queue.put_nowait(msg)
        code = await proc.wait()
        self._active.clear()
        if self._loaded and not self._loaded.done():
            self._loaded.set_result({"ev": "load_failed", "message": f"engine worker exited with code {code} while loading"})
        for pending in self._pending.values():
            pending.queue.put_nowait({"ev": "crashed", "code": code})
        for fut in [*self._counts.values(), *(e.done for e in self._embeds.values())]:
            if not fut.done():
                fut.set_exception(EngineCrashed(f"the engine worker stopped (exit code {code}); retry"))
        self._counts.clear()
        if self.state == EngineState.READY:
            self.error = f"engine worker exited with code {code}"
            self._to(EngineState.ERROR)

    def kill(self) -> None:
        """SIGKILL the worker (used on a hang); the read loop then fails in-flight requests."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()

    def govern(self, threads: int | None, pace_ms: float) -> None:
        """Thermal governor: decode with fewer threads and/or pause between decode steps."""
        try:
            self._send({"op": "govern", "threads": threads, "pace_ms": pace_ms})
        except EngineCrashed:
            pass

    # -- requests --------------------------------------------------------------------------------
    def _send(self, msg: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None or proc.stdin is None:
            raise EngineCrashed("the engine worker is not running")
        try:
            proc.stdin.write(encode(msg))
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise EngineCrashed("the engine worker is not running") from exc

    async def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` tokenized as a prompt (BOS added, special tokens parsed), as ``generate`` counts."""
        if self.state != EngineState.READY:
            raise EngineNotReady(f"the model is not ready (state {self.state.value}); retry shortly")
        rid = f"t{next(self._ids)}"
        fut = self._counts[rid] = asyncio.get_running_loop().create_future()
        try:
            self._send({"op": "tokenize", "id": rid, "text": text})
            msg = await fut
        finally:
            self._counts.pop(rid, None)
        if "error" in msg:
            raise EngineError(msg["error"])
        return int(msg["count"])

    async def embed(self, inputs: Sequence[str | list[int]], truncate: bool) -> Embeddings:
        """Unit-length embeddings of ``inputs`` (texts or token ids); an input longer than the model can embed
        raises :class:`ContextLengthExceeded` unless ``truncate`` (then it is cut)."""
        if self.state != EngineState.READY:
            raise EngineNotReady(f"the model is not ready (state {self.state.value}); retry shortly")
        rid = f"e{next(self._ids)}"
        emb = self._embeds[rid] = _Embedding(asyncio.get_running_loop().create_future())
        answered = False
        try:
            self._send({"op": "embed", "id": rid, "inputs": list(inputs), "truncate": truncate})
            msg = await emb.done
            answered = True
        finally:
            self._embeds.pop(rid, None)
            if not answered:  # the request went away: the worker stops before its next decode
                try:
                    self._send({"op": "embed_cancel", "id": rid})
                except EngineCrashed:
                    pass
        if "kind" in msg:
            raise error_from_wire(msg["kind"], msg["message"])
        if sorted(emb.vectors) != list(range(len(inputs))):
            raise EngineError(f"the engine sent {len(emb.vectors)} embeddings for {len(inputs)} inputs")
        got = [emb.vectors[i] for i in range(len(inputs))]
        return Embeddings([v for v, _ in got], [n for _, n in got], str(msg.get("pooling", "")))

    async def generate(self, prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
        if self.state != EngineState.READY:
            reason = f": {self.error}" if self.error else ""
            raise EngineNotReady(f"the model is not ready (state {self.state.value}{reason}); retry shortly")
        rid = f"r{next(self._ids)}"
        pending = self._pending[rid] = _Pending()
        finished = False
        try:
            self._send({"op": "generate", "id": rid, "prompt": prompt, "params": params.model_dump()})
            while True:
                msg = await pending.queue.get()
                ev = msg["ev"]
                if ev == "token":
                    yield Token(msg["text"])
                elif ev == "started":
                    yield Started(msg["prompt_tokens"], msg["cached_tokens"])
                elif ev == "done":
                    finished = True
                    yield Done(msg["finish_reason"], Usage.model_validate(msg["usage"]), msg.get("stop"))
                    return
                elif ev == "error":
                    finished = True
                    raise error_from_wire(msg["kind"], msg["message"])
                elif ev == "crashed":
                    finished = True
                    raise EngineCrashed(
                        f"the engine worker stopped (exit code {msg['code']}) during this request; retry it")
        finally:
            self._pending.pop(rid, None)
            if not finished:
                try:
                    self._send({"op": "cancel", "id": rid})
                except EngineCrashed:
                    pass
