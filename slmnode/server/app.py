"""The HTTP app: health, metrics, auth, the OpenAI and Ollama routers, and the engine's lifespan."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from slmnode import __version__
from slmnode.catalog.model_info import model_info
from slmnode.catalog.store import ModelStore
from slmnode.config import Settings
from slmnode.engine.client import EngineClient, EngineState
from slmnode.engine.worker import WorkerSettings
from slmnode.errors import SlmnodeError
from slmnode.hardware.cpu import default_threads
from slmnode.server import errors as error_handlers
from slmnode.server import ollama_api, openai_api
from slmnode.server.errors import error_response
from slmnode.server.service import Node, ServedModel

_OPEN_PATHS = {"/health", "/docs", "/openapi.json", "/"}


def served_model(settings: Settings, store: ModelStore | None = None) -> ServedModel:
    """The model to serve: a path to a .gguf, a name in the store, or the embedded default."""
    store = store or ModelStore()
    if settings.model and (settings.model.endswith(".gguf") or Path(settings.model).is_file()):
        path = Path(settings.model).expanduser()
        info = model_info(path)
        return ServedModel(name=path.stem, path=str(path), info=info, source=f"file:{path}")
    manifest = store.get(settings.model or "default")
    path = store.path_of(manifest)
    return ServedModel(name=manifest.name, path=str(path), info=model_info(path), sha256=manifest.sha256,
                       source=manifest.source, added_at=manifest.added_at)


def worker_settings(settings: Settings, model: ServedModel) -> WorkerSettings:
    return WorkerSettings(
        model_path=model.path, n_ctx=settings.ctx, n_threads=settings.threads or default_threads(),
        n_batch=settings.batch, n_ubatch=min(settings.ubatch, settings.batch), use_mmap=settings.mmap,
        use_mlock=settings.mlock, kv_type=settings.kv_type, flash_attn=settings.flash_attn,
    )


def create_app(node: Node, on_loaded: Callable[[Node], None] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def load() -> None:
            try:
                await node.engine.start()
                node.metrics.load_seconds.set(node.engine.load_seconds or 0)
                node.metrics.ready.set(1)
            except SlmnodeError:
                node.metrics.ready.set(0)  # state is ERROR; /health says why
            if on_loaded is not None:
                on_loaded(node)

        task = asyncio.create_task(load())
        app.state.load_task = task
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await node.engine.stop()

    app = FastAPI(title="slmnode", version=__version__, lifespan=lifespan,
                  description="OpenAI- and Ollama-compatible local language-model node")
    app.state.node = node
    error_handlers.install(app)

    @app.middleware("http")
    async def auth_and_count(request: Request, call_next: Any) -> Response:
        key = node.settings.api_key
        if key and request.url.path not in _OPEN_PATHS:
            given = request.headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(token.encode(), key.encode()):
                return error_response(request, 401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                      "authentication_error", "invalid_api_key",
                                      headers={"WWW-Authenticate": "Bearer"})
        response: Response = await call_next(request)
        if request.url.path.startswith(("/v1/", "/api/")):
            node.metrics.requests.labels(request.url.path, str(response.status_code)).inc()
        return response

    @app.get("/health")
    async def health() -> JSONResponse:
        state = node.engine.state
        body: dict[str, Any] = {"status": {EngineState.READY: "ok", EngineState.ERROR: "error"}.get(state, "loading"),
                                "model": node.model.name}
        if state == EngineState.ERROR:
            body["error"] = node.engine.error
        return JSONResponse(body, status_code=200 if state == EngineState.READY else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        node.metrics.queue_depth.set(node.engine.queue_depth)
        node.metrics.busy.set(1 if node.engine.busy else 0)
        return Response(node.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/")
    async def root() -> dict[str, Any]:
        return {"name": "slmnode", "version": __version__, "model": node.model.name,
                "openai_base_url": "/v1", "ollama_base_url": "/", "health": "/health"}

    app.include_router(openai_api.router)
    app.include_router(ollama_api.router)
    return app


def build_node(settings: Settings, store: ModelStore | None = None) -> Node:
    model = served_model(settings, store)
    engine = EngineClient(worker_settings(settings, model), model.name, model.info)
    return Node(engine=engine, model=model, settings=settings)
