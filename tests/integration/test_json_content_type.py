"""Ollama's documented curl examples, and clients that send no Content-Type, against a real node
(issue 15, item 2): the JSON body is read as JSON whatever the Content-Type."""

from __future__ import annotations

import json
import shutil
import subprocess

import httpx
import pytest

from tests.conftest import RunningNode

pytestmark = pytest.mark.integration

CURL_D = "application/x-www-form-urlencoded"  # what `curl -d` sends


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_ollamas_documented_curl_example(node: RunningNode) -> None:
    body = {"model": node.model, "stream": False, "options": {"num_predict": 4, "temperature": 0},
            "messages": [{"role": "user", "content": "why is the sky blue?"}]}
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", f"{node.base_url}/api/chat", "-d", json.dumps(body)],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    text, status = out.rsplit("\n", 1)
    assert status == "200", text
    r = json.loads(text)
    assert r["done"] is True and r["message"]["role"] == "assistant" and r["eval_count"] <= 4


@pytest.mark.parametrize("content_type", [None, CURL_D])
def test_openai_and_ollama_routes_without_a_json_content_type(node: RunningNode, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    with httpx.Client(base_url=node.base_url, timeout=600, headers=headers) as client:
        r = client.post("/v1/chat/completions", content=json.dumps({
            "model": node.model, "max_tokens": 4, "temperature": 0, "messages": [{"role": "user", "content": "Hi"}]}))
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] <= 4
        r = client.post("/api/generate", content=json.dumps({
            "model": node.model, "prompt": "The sun rises in the", "raw": True, "stream": False,
            "options": {"num_predict": 3, "temperature": 0}}))
        assert r.status_code == 200 and r.json()["done"] is True, r.text
        r = client.post("/api/chat", content=b"model=x")  # not JSON: a 400 in Ollama's shape
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
