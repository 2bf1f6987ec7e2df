"""Server faults are 5xx, bad input is 4xx, each in its protocol's shape (issue 15, item 8).

A bug or an engine that misbehaves is not the client's fault: it must not be a 400, and its
traceback must reach the log. Over the real ASGI app with a fake engine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest

from slmnode.engine.client import Event, Started, Token
from slmnode.engine.protocol import GenerationParams
from tests.unit.test_app_fake_engine import make

MSGS = [{"role": "user", "content": "hi"}]


async def _no_result(prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
    yield Started(3, 0)
    yield Token("half ")  # ... and the stream ends without a Done


async def _bug_at_once(prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
    raise RuntimeError("bug before the first event")
    yield  # pragma: no cover


async def _bug_mid_stream(prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
    yield Started(3, 0)
    yield Token("half ")
    raise RuntimeError("bug mid-stream")


def _tracebacks(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and text in str(r.exc_info[1])]


def test_an_engine_that_ends_without_a_result_is_a_503_not_a_400() -> None:
    client, eng = make()
    eng.release.set()
    with client:
        eng.generate = _no_result  # type: ignore[method-assign]
        r = client.post("/v1/chat/completions", json={"messages": MSGS})
        assert r.status_code == 503 and r.json()["error"]["type"] == "server_error", r.text
        r = client.post("/api/chat", json={"model": "fake:1", "messages": MSGS, "stream": False})
        assert r.status_code == 503 and "without a result" in r.json()["error"], r.text


def test_an_unexpected_error_is_a_500_in_each_shape_with_its_traceback_logged(caplog: pytest.LogCaptureFixture) -> None:
    client, eng = make()
    eng.release.set()
    with client, caplog.at_level(logging.ERROR):
        eng.generate = _bug_at_once  # type: ignore[method-assign]
        r = client.post("/v1/chat/completions", json={"messages": MSGS})
        assert r.status_code == 500
        assert r.json()["error"]["type"] == "server_error" and r.json()["error"]["code"] == "internal_error"
        r = client.post("/api/chat", json={"model": "fake:1", "messages": MSGS})
        assert r.status_code == 500 and set(r.json()) == {"error"} and "RuntimeError" in r.json()["error"]
    assert len(_tracebacks(caplog, "bug before the first event")) == 2
    assert "bug before" not in r.text  # the details stay in the log


def test_an_unexpected_error_mid_stream_ends_the_stream_with_an_error_and_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    client, eng = make()
    eng.release.set()
    with client, caplog.at_level(logging.ERROR):
        eng.generate = _bug_mid_stream  # type: ignore[method-assign]
        r = client.post("/v1/chat/completions", json={"messages": MSGS, "stream": True})
        events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["error"]["code"] == "internal_error"
        r = client.post("/api/chat", json={"model": "fake:1", "messages": MSGS})
        last = json.loads(r.text.splitlines()[-1])
        assert "RuntimeError" in last["error"]
    assert len(_tracebacks(caplog, "bug mid-stream")) == 2


def test_sampling_options_out_of_range_are_a_400_not_a_500() -> None:
    client, eng = make()
    eng.release.set()
    with client:
        r = client.post("/api/chat", json={"model": "fake:1", "messages": MSGS, "stream": False,
                                           "options": {"presence_penalty": 5}})
        assert r.status_code == 400 and r.json()["error"].startswith("options.presence_penalty:"), r.text
