"""Ollama's model management: ``POST /api/pull``, ``DELETE /api/delete``, ``POST /api/copy``, and ``GET|HEAD /``.

``/api/pull`` runs the same pull as ``slmnode pull`` (:func:`slmnode.catalog.pull.pull`: the disk and RAM checks
before any byte of the file, resume, sha256 verification) in a thread, and streams its progress as Ollama does,
one JSON object per line: ``pulling manifest``, ``pulling <digest>`` with ``total``/``completed``, ``verifying
sha256 digest``, ``writing manifest``, ``success`` (or ``{"error": ...}``). ``stream: false`` answers once, at
the end. A client that goes away stops the download; the partial file is kept and the next pull resumes it.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Self

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from slmnode.catalog.aliases import PullTarget, resolve_target
from slmnode.catalog.pull import DEFAULT_KEEP_FREE, PullResult, RamFit, RemoteFile, pull
from slmnode.catalog.store import Manifest, ModelStore
from slmnode.config import Settings
from slmnode.errors import ModelNotFound, RequestError, SlmnodeError
from slmnode.hardware.probe import probe as probe_hardware
from slmnode.hardware.root import SysRoot
from slmnode.hardware.storage import storage_facts
from slmnode.planner.fit import machine_repack_types
from slmnode.planner.profiles import load_local_profile
from slmnode.planner.pull_check import MemorySide, make_quant_pick, make_ram_check
from slmnode.server.service import Node

router = APIRouter(prefix="/api", tags=["ollama"])
root_router = APIRouter(tags=["ollama"])

PROGRESS_INTERVAL_S = 0.25  # at most this often a "completed" line per file (and at the end)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # insecure: accepted and ignored (the hub is always https)

    model: str | None = None
    name: str | None = None  # older clients
    stream: bool = True


class DeleteRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    name: str | None = None


class CopyRequest(BaseModel):
    source: str
    destination: str


class _Cancelled(Exception):
    """The client went away: stop the download (raised inside huggingface_hub's loop; the partial file stays)."""


class _Reporter:
    """The pull's progress as Ollama's status objects, handed from the pull thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.loop, self.queue = loop, queue
        self.cancelled = threading.Event()
        self.sha256: str | None = None  # from the hub, once described
        self.size = 0

    def put(self, status: dict[str, Any] | None) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, status)

    def pulling(self, completed: int) -> dict[str, Any]:
        digest = f"sha256:{self.sha256 or ''}"
        return {"status": f"pulling {(self.sha256 or '')[:12]}", "digest": digest, "total": self.size,
                "completed": completed}

    def bar(self, **kw: Any) -> _Bar:
        return _Bar(self, **kw)


class _Bar:
    """The tqdm-like progress bar :func:`slmnode.catalog.pull.pull` drives (download, then sha256 check)."""

    def __init__(self, reporter: _Reporter, *, desc: str | None = None, total: int | None = None, initial: int = 0,
                 **_: Any) -> None:
        self.r, self.done, self.sent_at = reporter, initial, 0.0
        self.verifying = desc == "verifying sha256"
        if self.verifying:
            reporter.put({"status": "verifying sha256 digest"})
        else:
            reporter.size = total or reporter.size
            reporter.put(reporter.pulling(initial))
            self.sent_at = time.monotonic()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.verifying and exc[0] is None:
            self.r.put(self.r.pulling(self.done))

    def update(self, n: int = 1) -> None:
        if self.verifying:
            return
        if self.r.cancelled.is_set():
            raise _Cancelled("the client went away")
        self.done += n
        now = time.monotonic()
        if now - self.sent_at >= PROGRESS_INTERVAL_S:
            self.sent_at = now
            self.r.put(self.r.pulling(self.done))


def memory_side(settings: Settings) -> MemorySide:
    """This machine's RAM for the pull's RAM check, read where the node reads its hardware (``hardware_root``)."""
    hw = probe_hardware(settings.hardware_root)
    avail = hw.memory.available_bytes
    return MemorySide(avail, hw.memory.swap_free_bytes or 0, "this machine (MemAvailable)",
                      machine_repack_types(hw.cpu.arch, hw.cpu.flags), load_local_profile(), avail)


def store_of(node: Node) -> ModelStore:
    return node.models.store or ModelStore()


def _run_pull(node: Node, target: PullTarget, reporter: _Reporter) -> PullResult:
    """The whole pull (in a worker thread)."""
    settings = node.settings
    ram = make_ram_check(memory_side(settings), settings.ctx, settings.kv_type)

    def ram_check(remote: RemoteFile) -> RamFit:
        reporter.sha256, reporter.size = remote.sha256, remote.size_bytes
        return ram(remote)

    def free_disk(path: Path) -> int | None:
        return storage_facts(SysRoot("/"), path).free_bytes

    result = pull(target, store=store_of(node), keep_free_bytes=DEFAULT_KEEP_FREE, free_disk=free_disk,
                  ram_check=ram_check, progress=reporter.bar)
    if result.already_present:  # nothing downloaded: the file is complete
        reporter.sha256, reporter.size = result.sha256, result.size_bytes
        reporter.put(reporter.pulling(result.size_bytes))
        reporter.put({"status": "verifying sha256 digest"})
    reporter.put({"status": "writing manifest"})
    return result


@router.post("/pull", response_model=None)
async def pull_model(body: PullRequest, request: Request) -> Response:
    node: Node = request.app.state.node
    name = body.model or body.name
    if not name:
        raise RequestError("model is required: the name to pull (an alias such as gemma3:270m, hf.co/owner/repo:"
                           "Q4_K_M, hf://owner/repo/file.gguf, or an https URL)", param="model")
    mem_for_pick: list[MemorySide] = []

    def pick(alias: Any) -> tuple[str, str] | None:
        if not mem_for_pick:
            mem_for_pick.append(memory_side(node.settings))
        return make_quant_pick(mem_for_pick[0], node.settings.ctx, node.settings.kv_type)(alias)

    target = await asyncio.to_thread(resolve_target, name, None, default_quant=pick)  # a bad name: 4xx here
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    reporter = _Reporter(asyncio.get_running_loop(), queue)
    reporter.put({"status": "pulling manifest"})

    def work() -> PullResult:
        try:
            return _run_pull(node, target, reporter)
        finally:
            reporter.put(None)

    job = asyncio.ensure_future(asyncio.to_thread(work))
    job.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if the client left
    if not body.stream:
        result = await job  # an error raises: its status and {"error": ...}
        return JSONResponse({"status": "success", "digest": f"sha256:{result.sha256}", "total": result.size_bytes,
                             "completed": result.size_bytes})

    async def lines() -> AsyncIterator[str]:
        try:
            while (status := await queue.get()) is not None:
                yield json.dumps(status) + "\n"
            try:
                await job
            except SlmnodeError as exc:
                yield json.dumps({"error": exc.message}) + "\n"
            else:
                yield json.dumps({"status": "success"}) + "\n"
        finally:
            reporter.cancelled.set()  # the client went away (or the pull ended): stop downloading

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def _stored_name(store: ModelStore, requested: str) -> Manifest:
    """The store's manifest named ``requested`` (``name``, ``name:latest`` or without ``:latest``), else 404."""
    manifests = {m.name: m for m in store.list()}
    for cand in (requested, f"{requested}:latest", requested.removesuffix(":latest")):
        if cand in manifests:
            return manifests[cand]
    known = ", ".join(sorted(manifests)) or "(none)"
    raise ModelNotFound(f"model '{requested}' not found; the store has: {known}", param="model")


@router.delete("/delete")
async def delete_model(body: DeleteRequest, request: Request) -> Response:
    node: Node = request.app.state.node
    name = body.model or body.name
    if not name:
        raise RequestError("model is required: the name to delete", param="model")
    store = store_of(node)
    manifest = _stored_name(store, name)
    if manifest.name == node.default.name:
        raise RequestError(f"'{manifest.name}' is the model this node serves by default; start the node with "
                           "another --model to delete it", param="model")
    if manifest.name in node.models.slots:
        await node.models.unload(manifest.name)  # in use: it finishes on the open file, then is gone
    await asyncio.to_thread(store.remove, manifest.name)
    return Response(status_code=200)


@router.post("/copy")
async def copy_model(body: CopyRequest, request: Request) -> Response:
    node: Node = request.app.state.node
    store = store_of(node)
    manifest = _stored_name(store, body.source)
    dest = body.destination.strip()
    if not _NAME.fullmatch(dest):
        raise RequestError(f"destination {body.destination!r} is not a model name (letters, digits and . _ : / @ + -,"
                           " at most 200 characters)", param="destination")
    if dest == node.default.name and dest != manifest.name:
        raise RequestError(f"'{dest}' is the model this node serves by default; copy to another name",
                           param="destination")
    if dest != manifest.name:
        await asyncio.to_thread(store.tag, manifest, dest)
    return Response(status_code=200)


LIVENESS = "Ollama is running"  # Ollama's answer on / (clients probe it before anything else)


@root_router.get("/", response_class=PlainTextResponse)
async def root() -> str:
    return LIVENESS


@root_router.head("/", response_class=PlainTextResponse)
async def root_head() -> str:
    return LIVENESS

