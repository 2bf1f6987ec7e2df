"""The engine runs in its own process: killing it fails in-flight requests cleanly, HTTP stays up."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from slmnode.catalog.embedded import DEFAULT_EMBEDDED
from tests.conftest import NodeProcess, start_node

pytestmark = pytest.mark.integration


@pytest.fixture()
def own_node(embedded_home: Path) -> Iterator[tuple[NodeProcess, str]]:
    p, url = start_node(embedded_home, "--ctx", "1024")
    yield p, url
    p.stop()


def test_worker_kill_gives_503_and_http_side_survives(own_node: tuple[NodeProcess, str]) -> None:
    """A request that has started generating fails cleanly (one that hadn't would be re-run)."""
    p, url = own_node
    (worker,) = psutil.Process(p.proc.pid).children()
    body = {"model": DEFAULT_EMBEDDED.name, "max_tokens": 900, "stream": True,
            "messages": [{"role": "user", "content": "Tell a long story."}]}
    with httpx.Client(base_url=url, timeout=120) as c:
        with c.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            while '"content"' not in next(lines):
                pass  # tokens are flowing: the request has started
            os.kill(worker.pid, signal.SIGKILL)
            rest = "\n".join(lines)
        assert '"code": "engine_crashed"' in rest and rest.rstrip().endswith("data: [DONE]")
        # the HTTP side still answers, and the next request runs once the supervisor has restarted the worker
        assert c.get("/v1/models").status_code == 200
        r2 = c.post("/v1/chat/completions", json={"model": DEFAULT_EMBEDDED.name, "max_tokens": 4,
                                                 "messages": [{"role": "user", "content": "hi"}]})
        assert r2.status_code == 200, r2.text
        assert c.get("/health").json()["status"] == "ok"
        (new_worker,) = psutil.Process(p.proc.pid).children()
        assert new_worker.pid != worker.pid
    assert p.proc.poll() is None
