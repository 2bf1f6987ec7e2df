"""A JSON body is read as JSON whatever its Content-Type (issue 15, item 2).

Ollama's documented examples (``curl http://localhost:11434/api/chat -d '{...}'``) send
``application/x-www-form-urlencoded``; some clients send no Content-Type. Ollama and llama-server
accept both, and so must the node, on every route; errors keep each protocol's shape.
Over the real ASGI app (TestClient) with a fake engine; tests/integration/test_json_content_type.py
does the same against a real node.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.test_app_fake_engine import make

CURL_D = "application/x-www-form-urlencoded"  # what `curl -d` sends
CONTENT_TYPES = [None, CURL_D, "text/plain", "application/octet-stream"]
MSGS = [{"role": "user", "content": "hi"}]
ROUTES: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/chat/completions", {"messages": MSGS}, "choices"),
    ("/v1/completions", {"prompt": "Once upon a time"}, "choices"),
    ("/api/chat", {"model": "fake:1", "messages": MSGS, "stream": False}, "message"),
    ("/api/generate", {"model": "fake:1", "prompt": "Why is the sky blue?", "stream": False}, "response"),
    ("/api/show", {"model": "fake:1"}, "details"),
]


def _post(client: Any, path: str, body: bytes, content_type: str | None) -> Any:
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = client.post(path, content=body, headers=headers)
    if content_type is None:
        assert "content-type" not in r.request.headers
    return r


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_every_route_reads_a_json_body_whatever_the_content_type(content_type: str | None) -> None:
    client, eng = make()
    eng.release.set()
    with client:
        for path, body, key in ROUTES:
            r = _post(client, path, json.dumps(body).encode(), content_type)
            assert r.status_code == 200, (path, r.text)
            assert key in r.json(), (path, r.text)


@pytest.mark.parametrize("content_type", [None, CURL_D])
def test_a_streamed_ollama_chat_sent_like_curl(content_type: str | None) -> None:
    client, eng = make()
    eng.release.set()
    with client:
        body = json.dumps({"model": "fake:1", "messages": MSGS}).encode()  # stream defaults to true
        r = _post(client, "/api/chat", body, content_type)
        lines = [json.loads(x) for x in r.text.splitlines()]
        assert r.status_code == 200 and lines[-1]["done"] is True
        assert "".join(x["message"]["content"] for x in lines).strip() == "Hello there"


def test_a_body_that_is_not_json_is_a_400_in_each_protocols_shape() -> None:
    client, eng = make()
    eng.release.set()
    with client:
        r = _post(client, "/v1/chat/completions", b"messages=hi", CURL_D)
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and "not valid JSON" in err["message"]
        r = _post(client, "/api/chat", b"model=x&messages=hi", CURL_D)
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
        r = _post(client, "/api/chat", json.dumps({"messages": MSGS}).encode(), CURL_D)  # no model
        assert r.status_code == 400 and r.json() == {"error": "model: Field required"}
        r = _post(client, "/v1/chat/completions", json.dumps({"messages": []}).encode(), None)
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_no_post_route_refuses_a_json_object_for_its_content_type() -> None:
    client, eng = make()
    eng.release.set()
    with client:
        api = client.get("/openapi.json").json()["paths"]
        paths = sorted(p for p, ops in api.items() if "post" in ops and "{" not in p)
        assert {"/v1/chat/completions", "/api/chat", "/api/generate"} <= set(paths)
        for path in paths:
            r = _post(client, path, b"{}", CURL_D)  # parsed as an (empty) object: any error names a field
            assert "valid dictionary" not in r.text and "not valid JSON" not in r.text, (path, r.text)
