"""The HTTP app: health, metrics, auth, the OpenAI and Ollama routers, and model loading."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from slmnode import __version__
from slmnode.catalog.model_info import model_info
from slmnode.catalog.store import ModelStore
from slmnode.config import Settings
from slmnode.engine.client import Engine, EngineClient, EngineState
from slmnode.engine.settings import WorkerSettings
from slmnode.errors import SlmnodeError
from slmnode.hardware.cpu import default_threads
from slmnode.hardware.memory import memory_facts
from slmnode.hardware.root import SysRoot
from slmnode.planner.memory import kv_split_fits
from slmnode.planner.model_facts import facts_from_gguf
from slmnode.server import anthropic_api, embeddings_api, ollama_api, ollama_models, openai_api, responses_api
from slmnode.server import errors as error_handlers
from slmnode.server.errors import error_response
from slmnode.server.models import ModelManager, ServedModel, parse_keep_alive
from slmnode.server.service import Node

_OPEN_PATHS = {"/health", "/docs", "/openapi.json", "/"}
log = logging.getLogger(__name__)


class JSONBodies:
    """Read every request body as JSON, whatever its Content-Type, as Ollama and llama-server do.

    Ollama's own examples (``curl URL -d '{...}'``) send ``application/x-www-form-urlencoded``, and
    some clients send no Content-Type at all; no route of this API takes anything but JSON.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
            if given != b"application/json" and not given.endswith(b"+json"):
                headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def served_model(settings: Settings, store: ModelStore | None = None) -> ServedModel:
    """The default model: a path to a .gguf, a name in the store, or (none given) the embedded default,
    SmolLM2 135M Instruct; its first use places the other embedded model (Gemma 3 270M) in the store too."""
    store = store or ModelStore()
    if settings.model and (settings.model.endswith(".gguf") or Path(settings.model).is_file()):
        path = Path(settings.model).expanduser()
        info = model_info(path)
        return ServedModel(name=path.stem, path=str(path), info=info, source=f"file:{path}")
    manifest = store.get(settings.model or "default")
    path = store.path_of(manifest)
    return ServedModel(name=manifest.name, path=str(path), info=model_info(path), sha256=manifest.sha256,
                       source=manifest.source, added_at=manifest.added_at)


def kv_split_for(settings: Settings, model: ServedModel) -> bool:
    """The KV layout: as set, or (auto) split when it costs at most 5% of this machine's RAM."""
    if settings.kv_layout != "auto":
        return settings.kv_layout == "split"
    try:
        facts = facts_from_gguf(model.path, model.info)
    except Exception:  # a model the planner can't read keeps the frugal layout
        return False
    total = memory_facts(SysRoot(settings.hardware_root)).total_bytes
    return kv_split_fits(facts, settings.ctx, settings.parallel, kv_type=settings.kv_type, total_ram_bytes=total)


DEFAULT_CACHE_RAM_MIB = 512


def cache_ram_for(settings: Settings) -> int:
    """MiB for parked prompt caches: as set, else 512 but at most a tenth of this machine's RAM."""
    if settings.cache_ram is not None:
        return settings.cache_ram
    total = memory_facts(SysRoot(settings.hardware_root)).total_bytes
    return DEFAULT_CACHE_RAM_MIB if total is None else min(DEFAULT_CACHE_RAM_MIB, total // 10 // 2**20)


def worker_settings(settings: Settings, model: ServedModel) -> WorkerSettings:
    return WorkerSettings(
        model_path=model.path, n_ctx=settings.ctx, n_threads=settings.threads or default_threads(),
        n_batch=settings.batch, n_ubatch=min(settings.ubatch, settings.batch), use_mmap=settings.mmap,
        use_mlock=settings.mlock, kv_type=settings.kv_type, flash_attn=settings.flash_attn,
        parallel=settings.parallel, kv_split=kv_split_for(settings, model), cache_ram_mb=cache_ram_for(settings),
    )


def engine_factory(settings: Settings) -> Callable[[ServedModel], Engine]:
    def make(model: ServedModel) -> Engine:
        return EngineClient(worker_settings(settings, model), model.name, model.info)
    return make


def build_node(settings: Settings, store: ModelStore | None = None,
               factory: Callable[[ServedModel], Engine] | None = None) -> Node:
    store = store or ModelStore()
    default = served_model(settings, store)
    manager = ModelManager(default, factory or engine_factory(settings), store=store,
                           max_loaded=settings.max_loaded_models, keep_alive=parse_keep_alive(settings.keep_alive),
                           default_keep_alive=None, max_queue=settings.max_queue)
    return Node(models=manager, settings=settings)


def health_body(node: Node) -> tuple[int, dict[str, Any]]:
    """200 ok when a model is loaded (or the default can be loaded on demand), else 503 loading/error."""
    models = node.models
    loaded = models.loaded()
    body: dict[str, Any] = {"model": node.default.name, "loaded": [s.model.name for s in loaded]}
    for extra in node.health_extras:
        body.update(extra())
    broken = [s for s in models.slots.values() if s.engine.state == EngineState.ERROR]
    if broken:  # a worker died; the next request reloads it
        return 503, {"status": "error", "error": broken[0].engine.error, **body}
    if loaded:
        return 200, {"status": "ok", **body}
    if models.loading or not node.startup_done:
        return 503, {"status": "loading", **body}
    if models.last_error:
        return 503, {"status": "error", "error": models.last_error, **body}
    return 200, {"status": "ok", **body}


def create_app(node: Node, on_loaded: Callable[[Node], None] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def load() -> None:
            try:
                await node.models.start_default()
                slot = node.models.slot_of(node.default.name)
                if slot is not None:
                    node.metrics.load_seconds.set(slot.engine.load_seconds or 0)
            except SlmnodeError:
                pass  # models.last_error holds the reason; /health reports it
            node.startup_done = True
            if on_loaded is not None:
                on_loaded(node)

        for service in node.services:
            await service.start(node)
        task = asyncio.create_task(load())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for service in reversed(node.services):
                await service.stop()
            await node.models.stop_all()

    app = FastAPI(title="slmnode", version=__version__, lifespan=lifespan,
                  description="OpenAI- and Ollama-compatible local language-model node")
    app.state.node = node
    error_handlers.install(app)
    app.add_middleware(JSONBodies)

    @app.middleware("http")
    async def auth_and_count(request: Request, call_next: Any) -> Response:
        keys = [k for k in (node.settings.api_key, *node.api_keys) if k]
        if keys and request.url.path not in _OPEN_PATHS:
            given = request.headers.get("authorization", "")
            # Anthropic's clients send the key as x-api-key
            token = given[7:] if given.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
            # compare against every key (no early exit) so timing says nothing about which one is close
            if not sum(hmac.compare_digest(token.encode(), k.encode()) for k in keys):
                return error_response(request, 401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                      "authentication_error", "invalid_api_key",
                                      headers={"WWW-Authenticate": "Bearer"})
        try:
            response: Response = await call_next(request)
        except Exception as exc:  # a bug, not the client's fault: 500 in the API's error shape, traceback logged
            log.exception("unexpected error serving %s %s", request.method, request.url.path)
            response = error_response(request, 500, f"internal error ({type(exc).__name__}); the node's log has "
                                      "the details", "server_error", "internal_error")
        if request.url.path.startswith(("/v1/", "/api/")):
            node.metrics.requests.labels(request.url.path, str(response.status_code)).inc()
        return response

    @app.get("/health")
    async def health() -> JSONResponse:
        status, body = health_body(node)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics")
    async def metrics() -> Response:
        node.metrics.queue_depth.set(node.models.queue_depth)
        node.metrics.busy.set(1 if node.models.busy else 0)
        node.metrics.ready.set(1 if node.models.loaded() else 0)
        count, nbytes = node.models.parked
        node.metrics.parked_prompts.set(count)
        node.metrics.parked_bytes.set(nbytes)
        return Response(node.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(openai_api.router)
    app.include_router(responses_api.router)
    app.include_router(ollama_api.router)
    app.include_router(anthropic_api.router)
    app.include_router(embeddings_api.router)
    app.include_router(ollama_models.router)
    app.include_router(ollama_models.root_router)  # GET|HEAD / : "Ollama is running"
    return app
