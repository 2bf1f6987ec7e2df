"""A client that hangs up before a streamed response starts must not leak its model lease or its job.

The ASGI app is called directly with a ``receive`` that reports the disconnect at once: Starlette then cancels
the response before the body iterator's first step, so cleanup that lives inside the body never runs. Every
streaming route must still stop its engine job and release the lease (``slot.active`` back to 0).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from slmnode.config import Settings
from slmnode.engine.client import Event, Started, Token
from slmnode.engine.protocol import GenerationParams
from slmnode.server.app import create_app
from slmnode.server.models import ModelManager, ServedModel
from slmnode.server.service import Node
from tests.unit.test_app_fake_engine import GEMMA, FakeEngine

MSGS = [{"role": "user", "content": "hi"}]
ROUTES = [
    ("/v1/chat/completions", {"messages": MSGS, "stream": True}),
    ("/v1/completions", {"prompt": "hi", "stream": True}),
    ("/api/chat", {"model": "fake:1", "messages": MSGS}),
    ("/api/generate", {"model": "fake:1", "prompt": "hi"}),
    ("/v1/responses", {"input": "hi", "stream": True}),
    ("/v1/messages", {"model": "fake:1", "max_tokens": 8, "messages": MSGS, "stream": True}),
]


class EndlessEngine(FakeEngine):
    """Started, one token, then waits until the job is closed; counts open jobs."""

    def __init__(self) -> None:
        super().__init__()
        self.release.set()
        self.open_jobs = 0

    async def generate(self, prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
        self.open_jobs += 1
        try:
            yield Started(3, 0)
            yield Token("x")
            await asyncio.Event().wait()  # until cancelled or closed
        finally:
            self.open_jobs -= 1


async def _call_and_hang_up(app: Any, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = json.dumps(body).encode()
    incoming = [{"type": "http.request", "body": raw, "more_body": False}, {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(("path", "body"), ROUTES, ids=[p for p, _ in ROUTES])
def test_hanging_up_before_the_stream_starts_releases_the_lease_and_stops_the_job(path: str, body: dict[str, Any]) -> None:
    eng = EndlessEngine()
    manager = ModelManager(ServedModel("fake:1", "/x.gguf", GEMMA), lambda m: eng)  # type: ignore[arg-type,return-value]

    async def run() -> None:
        loaded = asyncio.Event()
        app = create_app(Node(models=manager, settings=Settings()), on_loaded=lambda node: loaded.set())
        async with app.router.lifespan_context(app):
            await loaded.wait()
            slot = manager.slot_of("fake:1")
            assert slot is not None and slot.active == 0
            await _call_and_hang_up(app, path, body)
            assert eng.open_jobs == 0, "the engine job is still running after the client left"
            assert slot.active == 0, "the lease was never released"

    asyncio.run(run())
