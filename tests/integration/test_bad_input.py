"""Bad input gets a 4xx with an OpenAI-style body, and the node keeps serving."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import RunningNode, decode_step_s

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def http(node: RunningNode) -> httpx.Client:
    with httpx.Client(base_url=node.base_url, timeout=120) as c:
        yield c


def _chat(model: str, **extra: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **extra}


def _assert_openai_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert err["type"]
    if code:
        assert err["code"] == code
    return err


def test_malformed_json_is_400(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", content=b'{"model": "x", "messages": [', headers={"content-type": "application/json"})
    err = _assert_openai_error(r, 400)
    assert "JSON" in err["message"]


def test_unknown_model_is_404_model_not_found(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", json=_chat("gpt-9-ultra"))
    err = _assert_openai_error(r, 404, "model_not_found")
    assert "gpt-9-ultra" in err["message"]


@pytest.mark.parametrize("patch,param", [
    ({"temperature": "hot"}, "temperature"),
    ({"max_tokens": -5}, "max_tokens"),
    ({"messages": "hello"}, "messages"),
    ({"stream": {"yes": 1}}, "stream"),
])
def test_wrong_types_are_400(http: httpx.Client, node: RunningNode, patch: dict, param: str) -> None:
    err = _assert_openai_error(http.post("/v1/chat/completions", json={**_chat(node.model), **patch}), 400, "invalid_request")
    assert err["param"] == param


def test_empty_messages_is_400(http: httpx.Client, node: RunningNode) -> None:
    _assert_openai_error(http.post("/v1/chat/completions", json={"model": node.model, "messages": []}), 400)


def test_unknown_role_is_400(http: httpx.Client, node: RunningNode) -> None:
    r = http.post("/v1/chat/completions", json={"model": node.model, "messages": [{"role": "wizard", "content": "x"}]})
    assert "role" in _assert_openai_error(r, 400)["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_longer_than_context_is_400_not_truncated(http: httpx.Client, node: RunningNode, stream: bool) -> None:
    long = "word " * 3000  # > 2048-token context of the test node
    r = http.post("/v1/chat/completions", json={**_chat(node.model, stream=stream), "messages": [{"role": "user", "content": long}]})
    err = _assert_openai_error(r, 400, "context_length_exceeded")
    assert "2048" in err["message"]


def test_max_tokens_past_context_is_400(http: httpx.Client, node: RunningNode) -> None:
    _assert_openai_error(http.post("/v1/chat/completions", json=_chat(node.model, max_tokens=5000)), 400, "context_length_exceeded")


def test_bad_tool_choice_and_schema_are_400(http: httpx.Client, node: RunningNode) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    r = http.post("/v1/chat/completions", json=_chat(node.model, tools=tools, tool_choice={"type": "function", "function": {"name": "g"}}))
    _assert_openai_error(r, 400)
    r = http.post("/v1/chat/completions", json=_chat(node.model, response_format={"type": "json_schema", "json_schema": {"name": "x"}}))
    _assert_openai_error(r, 400)


def test_unknown_route_is_404_with_body(http: httpx.Client) -> None:
    _assert_openai_error(http.get("/v1/nothing-here"), 404)


def test_node_still_serves_after_bad_input(http: httpx.Client, node: RunningNode) -> None:
    http.post("/v1/chat/completions", content=b"not json", headers={"content-type": "application/json"})
    r = http.post("/v1/chat/completions", json=_chat(node.model))
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] is not None
    assert http.get("/health").json()["status"] == "ok"


def _busy(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("slmnode_engine_busy "):
            return float(line.split()[1])
    raise AssertionError("slmnode_engine_busy missing from /metrics")


def test_disconnect_mid_stream_frees_the_engine_within_a_few_steps(http: httpx.Client, node: RunningNode) -> None:
    # 1500 tokens take 1500 steps; a cancel takes effect at the engine's next step, after the HTTP process has
    # noticed the client left. Allow 100 steps (at least a second): well short of 1500, and true on any machine.
    deadline = max(1.0, 100 * decode_step_s(node.base_url, node.model))
    body = {**_chat(node.model, stream=True, max_tokens=1500, temperature=0.8), "messages": [{"role": "user", "content": "Tell a very long story."}]}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        seen = 0
        for line in r.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                seen += 1
            if seen >= 5:
                break
        assert _busy(http) == 1.0  # still generating while we hold the stream
    closed = time.monotonic()
    while _busy(http) != 0.0:
        assert time.monotonic() - closed < deadline, f"engine still generating {deadline:.1f} s after the client left"
    # and the next request runs at once
    r = http.post("/v1/chat/completions", json=_chat(node.model, max_tokens=2))
    assert r.status_code == 200
