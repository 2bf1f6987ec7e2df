"""Calling one OpenAI-compatible cloud upstream with httpx: a whole answer, or a primed SSE stream.
(An ``api = "anthropic"`` upstream is called in Anthropic's format: :mod:`.anthropic_upstream`.)

Failures that another route may cure (connection refused, timeout, 401/403/404/408/429, 5xx, a
stream cut before its first chunk) raise :class:`UpstreamFailed`; the router then tries the next
route. A 400/413/422 is the request's own fault: :class:`UpstreamRejected` carries the upstream's
status and body back to the client unchanged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from slmnode.router import anthropic_upstream
from slmnode.router.config import Upstream

_CLIENT_FAULT = {400, 413, 422}


class UpstreamFailed(Exception):
    """This upstream could not answer now; ``reason`` is short and safe to show (no key, no prompt)."""

    def __init__(self, upstream: str, reason: str) -> None:
        super().__init__(f"{upstream}: {reason}")
        self.upstream, self.reason = upstream, reason


class UpstreamRejected(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"upstream rejected the request with {status}")
        self.status, self.body = status, body


@dataclass
class StreamTally:
    """What a proxied stream carried, filled in as it goes."""

    tokens_in: int = 0
    tokens_out: int = 0
    chars_out: int = 0
    finished: bool = False


def _request(up: Upstream, body: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if up.api == "anthropic":
        headers["anthropic-version"] = anthropic_upstream.ANTHROPIC_VERSION
        if key := up.api_key():
            headers["x-api-key"] = key
        return f"{up.base_url}/messages", headers, anthropic_upstream.messages_body(body, up.model)
    if key := up.api_key():
        headers["Authorization"] = f"Bearer {key}"
    return f"{up.base_url}/chat/completions", headers, {**body, "model": up.model}


def _failure(up: Upstream, status: int, text: str) -> UpstreamFailed:
    hint = {401: f" (check the API key in ${up.api_key_env})", 403: " (key not allowed)",
            404: " (check base_url and model)", 429: " (rate limited)"}.get(status, "")
    return UpstreamFailed(up.name, f"HTTP {status}{hint}")


def _rejected(resp: httpx.Response, text: str, up: Upstream | None = None) -> UpstreamRejected:
    if up is not None and up.api == "anthropic":
        return UpstreamRejected(resp.status_code, anthropic_upstream.error_body(resp.status_code, text))
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = {"error": {"message": text[:500], "type": "invalid_request_error", "param": None, "code": None}}
    return UpstreamRejected(resp.status_code, body)


def _transport_reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or unreachable"
    return f"transport error ({type(exc).__name__})"


def timeout_for(up: Upstream) -> httpx.Timeout:
    return httpx.Timeout(up.timeout, connect=min(up.timeout, 10.0))


async def complete(client: httpx.AsyncClient, up: Upstream, body: dict[str, Any]) -> dict[str, Any]:
    """One non-streaming chat completion; the upstream's JSON answer."""
    url, headers, payload = _request(up, {**body, "stream": False})
    payload.pop("stream_options", None)
    try:
        resp = await client.post(url, json=payload, headers=headers, timeout=timeout_for(up))
    except httpx.HTTPError as exc:
        raise UpstreamFailed(up.name, _transport_reason(exc)) from exc
    if resp.status_code in _CLIENT_FAULT:
        raise _rejected(resp, resp.text, up)
    if resp.status_code != 200:
        raise _failure(up, resp.status_code, resp.text)
    try:
        data = resp.json()
        if up.api == "anthropic":
            data = anthropic_upstream.completion(data)
        data["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise UpstreamFailed(up.name, "answer is not a chat completion") from exc
    return data


async def open_stream(client: httpx.AsyncClient, up: Upstream, body: dict[str, Any],
                      tally: StreamTally) -> AsyncIterator[str]:
    """Start a streaming completion and wait for its first chunk, so a failure can still fall back.

    Returns an iterator of SSE ``data:`` payloads (str, without the prefix), ending after ``[DONE]``.
    Usage is always requested upstream (for the ledger) and recorded in ``tally``. An Anthropic-format
    upstream answers whole; its answer is replayed as chunks.
    """
    if up.api == "anthropic":
        answer = await complete(client, up, body)
        tally.tokens_in = int(answer["usage"]["prompt_tokens"])
        tally.tokens_out = int(answer["usage"]["completion_tokens"])
        tally.finished = True

        async def replayed() -> AsyncIterator[str]:
            for item in anthropic_upstream.chunks(answer):
                yield item

        return replayed()
    url, headers, payload = _request(up, {**body, "stream": True})
    payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    request = client.build_request("POST", url, json=payload, headers=headers, timeout=timeout_for(up))
    try:
        resp = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise UpstreamFailed(up.name, _transport_reason(exc)) from exc
    if resp.status_code != 200:
        text = (await resp.aread()).decode("utf-8", "replace")
        await resp.aclose()
        if resp.status_code in _CLIENT_FAULT:
            raise _rejected(resp, text)
        raise _failure(up, resp.status_code, text)
    lines = resp.aiter_lines()

    async def next_data() -> str | None:
        async for line in lines:
            if line.startswith("data:"):
                return line[5:].strip()
        return None

    try:
        first = await next_data()
    except httpx.HTTPError as exc:
        await resp.aclose()
        raise UpstreamFailed(up.name, f"stream cut before the first chunk ({_transport_reason(exc)})") from exc
    if first is None or first == "[DONE]":
        await resp.aclose()
        raise UpstreamFailed(up.name, "stream ended before the first chunk")

    def note(data: str) -> None:
        try:
            obj = json.loads(data)
        except ValueError:
            return
        if isinstance(obj, dict):
            if usage := obj.get("usage"):
                tally.tokens_in = int(usage.get("prompt_tokens") or 0)
                tally.tokens_out = int(usage.get("completion_tokens") or 0)
            for choice in obj.get("choices") or []:
                delta = choice.get("delta") or {}
                tally.chars_out += len(delta.get("content") or "")

    async def rest() -> AsyncIterator[str]:
        try:
            data: str | None = first
            while data is not None:
                if data == "[DONE]":
                    tally.finished = True
                    yield data
                    return
                note(data)
                yield data
                data = await next_data()
            raise UpstreamFailed(up.name, "stream cut before [DONE]")
        except httpx.HTTPError as exc:
            raise UpstreamFailed(up.name, f"stream cut ({_transport_reason(exc)})") from exc
        finally:
            await resp.aclose()

    return rest()
