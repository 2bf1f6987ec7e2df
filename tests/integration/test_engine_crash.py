"""The engine runs in its own process: killing it fails in-flight requests cleanly, HTTP stays up."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from slmnode.catalog.store import EMBEDDED_NAME
from tests.conftest import NodeProcess, start_node

pytestmark = pytest.mark.integration


@pytest.fixture()
def own_node(embedded_home: Path) -> Iterator[tuple[NodeProcess, str]]:
    p, url = start_node(embedded_home, "--ctx", "1024")
    yield p, url
    p.stop()


def test_worker_kill_gives_503_and_http_side_survives(own_node: tuple[NodeProcess, str]) -> None:
    p, url = own_node
    (worker,) = psutil.Process(p.proc.pid).children()
    results: dict[str, httpx.Response] = {}
    started = threading.Event()

    def long_request() -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            started.set()
            results["r"] = c.post("/v1/chat/completions", json={
                "model": EMBEDDED_NAME, "max_tokens": 900, "messages": [{"role": "user", "content": "Tell a long story."}]})

    t = threading.Thread(target=long_request)
    t.start()
    started.wait()
    with httpx.Client(base_url=url, timeout=30) as c:
        while "slmnode_engine_busy 1.0" not in c.get("/metrics").text:
            assert t.is_alive(), "request finished before the engine got busy"
        os.kill(worker.pid, signal.SIGKILL)
        t.join(timeout=60)
        r = results["r"]
        assert r.status_code == 503 and r.json()["error"]["code"] == "engine_crashed"
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "error"
        assert "exited" in health.json()["error"]
        # the HTTP side still answers, with a clear error for new work
        r2 = c.post("/v1/chat/completions", json={"model": EMBEDDED_NAME, "messages": [{"role": "user", "content": "hi"}]})
        assert r2.status_code == 503 and r2.json()["error"]["code"] == "engine_not_ready"
        assert c.get("/v1/models").status_code == 200
    assert p.proc.poll() is None
