"""HTTP side of the bench: one OpenAI-compatible endpoint (slmnode, llama-server, llama-cpp-python[server],
Ollama's /v1), timed from the client. httpx is imported here and nowhere else in slmnode.

An endpoint is written ``http://host:port`` or ``http://host:port/v1``; a ``#model`` fragment picks the
model (``http://127.0.0.1:11434/v1#gemma3:270m``), else the first one ``GET /v1/models`` lists.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from slmnode.bench.protocols import WireProtocol
from slmnode.bench.protocols import answer as wire_answer
from slmnode.bench.protocols import request as wire_request
from slmnode.errors import BenchError


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # without /v1
    model: str | None = None
    api_key: str | None = None

    @property
    def display(self) -> str:
        return self.base_url + (f"#{self.model}" if self.model else "")


def parse_endpoint(url: str, api_key: str | None = None) -> Endpoint:
    """``http://h:p[/v1][#model]`` -> :class:`Endpoint` (raises BenchError on a malformed URL)."""
    base, _, model = url.partition("#")
    base = base.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise BenchError(f"endpoint '{url}' must start with http:// or https:// (e.g. http://127.0.0.1:8080/v1)")
    base = base.removesuffix("/v1")
    return Endpoint(base, model or None, api_key)


@dataclass
class CallResult:
    """A non-streamed call: client wall time, the response body, its usage and llama-server-style timings."""

    wall_s: float
    body: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    timings: dict[str, Any] | None


@dataclass
class StreamResult:
    """A streamed call: seconds from sending to the first and last generated chunk."""

    ttft_s: float
    total_s: float
    first_s: float
    last_s: float
    chunks: int  # chunks that carried generated output (about one per token)
    text: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] | None = None

    @property
    def completion_tokens(self) -> int:
        return int(self.usage.get("completion_tokens") or self.chunks)

    @property
    def decode_tps(self) -> float:
        """Tokens after the first / time between the first and last chunk (client-side generation rate)."""
        span = self.last_s - self.first_s
        n = self.completion_tokens - 1
        return n / span if span > 0 and n > 0 else 0.0


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    err = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, dict):
        return str(err.get("message") or err)[:300]
    return str(err)[:300]


class BenchClient:
    """Synchronous, one request at a time (the bench measures one agent's view)."""

    def __init__(self, endpoint: Endpoint, *, timeout: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        self.endpoint = endpoint
        self._http = httpx.Client(base_url=endpoint.base_url, headers=headers, timeout=timeout)
        self._model = endpoint.model

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BenchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model(self) -> str:
        if self._model is None:
            self._model = self.discover_model()
        return self._model

    def discover_model(self) -> str:
        try:
            resp = self._http.get("/v1/models")
        except httpx.HTTPError as exc:
            raise BenchError(f"cannot reach {self.endpoint.base_url}: {exc}; is the server running?") from exc
        if resp.status_code != 200:
            raise BenchError(f"{self.endpoint.base_url}/v1/models answered {resp.status_code}: {_error_text(resp)}")
        data = resp.json().get("data") or []
        if not data:
            raise BenchError(f"{self.endpoint.base_url} serves no model; name one with URL#model")
        return str(data[0]["id"])

    def _post(self, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        t0 = time.perf_counter()
        try:
            resp = self._http.post(path, json={"model": self.model, **body})
        except httpx.HTTPError as exc:
            raise BenchError(f"{self.endpoint.base_url}{path} failed: {exc}") from exc
        wall = time.perf_counter() - t0
        if resp.status_code != 200:
            raise BenchError(f"{self.endpoint.base_url}{path} answered {resp.status_code}: {_error_text(resp)}")
        return resp.json(), wall

    def complete(self, prompt: str, max_tokens: int, **extra: Any) -> CallResult:
        """Non-streamed ``/v1/completions``."""
        body, wall = self._post("/v1/completions", {"prompt": prompt, "max_tokens": max_tokens, "stream": False, **extra})
        usage = body.get("usage") or {}
        return CallResult(wall, body, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                          body.get("timings"))

    def chat(self, messages: list[dict[str, Any]], *, protocol: WireProtocol = "openai", **extra: Any) -> CallResult:
        """One non-streamed chat call: ``/v1/chat/completions``, or the same call as ``/v1/messages`` (Anthropic)
        or ``/v1/responses``; the result's body is in the chat completions shape either way (the protocol's own
        answer under ``protocol_body``)."""
        path, payload = wire_request(protocol, messages, extra)
        body, wall = self._post(path, payload)
        message, prompt, completion, timings = wire_answer(protocol, body)
        if protocol != "openai":
            body = {"choices": [{"message": message}], "protocol_body": body}
        return CallResult(wall, body, prompt, completion, timings)

    def stream(self, path: str, body: dict[str, Any]) -> StreamResult:
        """Stream ``path`` (SSE) and time the chunks that carry generated output."""
        payload = {"model": self.model, **body, "stream": True, "stream_options": {"include_usage": True}}
        first = last = None
        chunks, parts = 0, []
        usage: dict[str, Any] = {}
        timings: dict[str, Any] | None = None
        t0 = time.perf_counter()
        try:
            with self._http.stream("POST", path, json=payload) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise BenchError(f"{self.endpoint.base_url}{path} answered {resp.status_code}: {_error_text(resp)}")
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    obj = json.loads(data)
                    if "error" in obj:
                        raise BenchError(f"{self.endpoint.base_url}{path} failed mid-stream: {obj['error']}")
                    now = time.perf_counter() - t0
                    usage = obj.get("usage") or usage
                    timings = obj.get("timings") or timings
                    for choice in obj.get("choices") or []:
                        delta = choice.get("delta") or {}
                        piece = choice.get("text") if "text" in choice else delta.get("content")
                        if piece or delta.get("tool_calls") or choice.get("finish_reason"):
                            if piece or delta.get("tool_calls"):
                                chunks += 1
                                parts.append(piece or "")
                                last = now
                            first = now if first is None else first
        except httpx.HTTPError as exc:
            raise BenchError(f"{self.endpoint.base_url}{path} failed: {exc}") from exc
        total = time.perf_counter() - t0
        first = total if first is None else first
        return StreamResult(first, total, first, last if last is not None else first, chunks, "".join(parts),
                            usage, timings)

    def stream_complete(self, prompt: str, max_tokens: int, **extra: Any) -> StreamResult:
        return self.stream("/v1/completions", {"prompt": prompt, "max_tokens": max_tokens, **extra})

    def stream_chat(self, messages: list[dict[str, Any]], **extra: Any) -> StreamResult:
        return self.stream("/v1/chat/completions", {"messages": messages, **extra})
