"""HTTP logic above the engine, on a fake engine (fast). Proof that serving works is in integration/."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from slmnode.catalog.store import ModelStore
from slmnode.cli import main
from slmnode.config import Settings
from slmnode.engine.client import Done, EngineState, Event, Started, Token
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.server.app import create_app
from slmnode.server.models import ModelManager, ServedModel
from slmnode.server.service import Node
from tests.unit.test_chat_format import GEMMA


class FakeEngine:
    def __init__(self, reply: str = "Hello there") -> None:
        self.state = EngineState.STOPPED
        self.model_name, self.info, self.error = "fake:1", GEMMA, None
        self.load_seconds: float | None = None
        self.n_ctx = 512
        self.release = threading.Event()
        self.reply = reply
        self.prompts: list[tuple[str, GenerationParams]] = []
        self.queue_depth, self.busy = 0, False
        self.parked_prompts = self.parked_bytes = 0

    async def start(self) -> None:
        self.state = EngineState.LOADING
        await asyncio.to_thread(self.release.wait)
        self.state, self.load_seconds = EngineState.READY, 0.01

    async def stop(self) -> None:
        self.state = EngineState.STOPPED

    async def generate(self, prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
        self.prompts.append((prompt, params))
        yield Started(7, 0)
        for word in self.reply.split(" "):
            yield Token(word + " ")
        yield Done("stop", Usage(prompt_tokens=7, completion_tokens=2, prompt_ms=10, generation_ms=10))


def make(settings: Settings | None = None) -> tuple[TestClient, FakeEngine]:
    eng = FakeEngine()
    manager = ModelManager(ServedModel("fake:1", "/x.gguf", GEMMA), lambda m: eng)  # type: ignore[arg-type,return-value]
    node = Node(models=manager, settings=settings or Settings())
    return TestClient(create_app(node)), eng


def test_health_is_503_loading_until_the_model_is_loaded() -> None:
    client, eng = make()
    with client:
        r = client.get("/health")
        assert (r.status_code, r.json()["status"]) == (503, "loading")
        eng.release.set()
        while eng.state != EngineState.READY:
            pass
        assert client.get("/health").json() == {"status": "ok", "model": "fake:1", "loaded": ["fake:1"]}


def test_requests_during_load_wait_for_it_and_complete() -> None:
    client, eng = make()
    with client:
        results: list[int] = []
        t = threading.Thread(target=lambda: results.append(
            client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}).status_code))
        t.start()
        assert client.get("/health").status_code == 503
        assert t.is_alive()  # queued behind the load, not refused
        eng.release.set()
        t.join(10)
        assert results == [200]


def test_engine_not_ready_error_is_503_with_retry_after() -> None:
    client, eng = make()
    eng.release.set()
    with client:
        from slmnode.errors import EngineNotReady

        async def refuse(prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
            raise EngineNotReady("the model is not ready (state loading); retry shortly")
            yield  # pragma: no cover

        eng.generate = refuse  # type: ignore[method-assign]
        r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "engine_not_ready"


def test_api_key_required_when_set() -> None:
    client, eng = make(Settings(api_key="s3cret"))
    eng.release.set()
    with client:
        body = {"messages": [{"role": "user", "content": "x"}]}
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert client.post("/api/chat", json={"model": "fake:1", **body}).json() == {
            "error": "missing or wrong API key: send 'Authorization: Bearer <key>'"}
        ok = client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert client.get("/health").status_code == 200  # health stays open


def test_system_message_reaches_the_prompt_and_stop_tokens_are_set() -> None:
    client, eng = make()
    eng.release.set()
    with client:
        client.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "SYS-TEXT"},
                                                               {"role": "user", "content": "hi"}], "stop": "###"})
    prompt, params = eng.prompts[-1]
    assert "SYS-TEXT" in prompt and prompt.startswith("<start_of_turn>user\nSYS-TEXT")
    assert params.stop[0] == "###" and "<end_of_turn>" in params.stop


def test_metrics_count_requests_and_tokens() -> None:
    client, eng = make()
    eng.release.set()
    with client:
        client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        text = client.get("/metrics").text
    assert 'slmnode_requests_total{endpoint="/v1/chat/completions",status="200"} 1.0' in text
    assert "slmnode_generated_tokens_total 2.0" in text
    assert "slmnode_model_load_seconds" in text and "slmnode_queue_depth" in text


def test_ollama_error_body_shape() -> None:
    client, eng = make()
    eng.release.set()
    with client:
        r = client.post("/api/chat", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404 and isinstance(r.json()["error"], str)


def test_serve_refuses_public_bind_without_key() -> None:
    r = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"])
    assert r.exit_code == 1 and "--api-key" in r.output


@pytest.mark.parametrize("cmd", [[], ["serve"], ["run"], ["chat"], ["models"], ["models", "import"]])
def test_help_teaches(cmd: list[str]) -> None:
    r = CliRunner().invoke(main, [*cmd, "--help"])
    assert r.exit_code == 0 and "Usage:" in r.output


def test_model_lists_survive_a_corrupt_manifest(tmp_path: Path) -> None:
    from tests.unit.test_store_and_meta import tiny_gguf

    store = ModelStore(tmp_path / "store")
    store.add_file(tiny_gguf(tmp_path / "tiny.gguf"), "tiny:1", source="file:test")
    (store.manifests / "half-written.json").write_text('{"name": "x", ', encoding="utf-8")
    eng = FakeEngine()
    eng.release.set()
    manager = ModelManager(ServedModel("fake:1", "/x.gguf", GEMMA), lambda m: eng,  # type: ignore[arg-type,return-value]
                           store=store)
    with TestClient(create_app(Node(models=manager, settings=Settings()))) as client:
        r = client.get("/v1/models")  # before: 500 for every client listing models
        assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == ["fake:1", "tiny:1"]
        assert [m["name"] for m in client.get("/api/tags").json()["models"]] == ["fake:1", "tiny:1"]
        assert client.post("/api/show", json={"model": "tiny:1"}).json()["details"]["family"] == "llama"


def test_ps_expiry_is_right_after_the_wall_clock_jumps(monkeypatch: pytest.MonkeyPatch) -> None:
    eng = FakeEngine()
    eng.release.set()
    manager = ModelManager(ServedModel("fake:1", "/x.gguf", GEMMA), lambda m: eng,  # type: ignore[arg-type,return-value]
                           default_keep_alive=300.0)
    with TestClient(create_app(Node(models=manager, settings=Settings()))) as client:
        assert client.post("/api/generate", json={"model": "fake:1", "prompt": "hi", "stream": False}).status_code == 200
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 86400)  # first NTP sync on a Pi without RTC
        before = time.time()
        (entry,) = client.get("/api/ps").json()["models"]
        after = time.time()
    expires = datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00")).timestamp()
    assert before <= expires <= after + 300  # before: a day in the past (last use + 300 s on the old clock)
