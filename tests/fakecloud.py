"""A small OpenAI-compatible HTTP server on 127.0.0.1 that answers or fails on demand (router tests).

The first path segment picks the behaviour: ``{base}/<mode>/v1/chat/completions`` with mode
``ok`` (answers, records the body), ``429``, ``500``, ``400``, ``slow`` (answers after ``slow_s``, past a
short upstream timeout), ``cut`` (closes before the first byte of the answer), ``cutlater`` (stream:
one chunk, then the connection drops; whole answer: a truncated body). Every hit is counted.
``{base}/<mode>/v1/messages`` answers (and fails) as Anthropic's Messages API does.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


def _completion(model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "cloud says hi"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}


def _message(model: str) -> dict[str, Any]:
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": "anthropic cloud says hi"}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 4, "cache_read_input_tokens": 2}}


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    obj = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(obj)}\n\n".encode()


class FakeCloud:
    def __init__(self, slow_s: float = 5.0) -> None:
        self.hits: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.slow_s = slow_s
        self.closing = threading.Event()
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                mode = self.path.strip("/").split("/")[0]
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                cloud.hits[mode] += 1
                cloud.auth.append(self.headers.get("Authorization") or self.headers.get("x-api-key"))
                model, stream = body.get("model", "fake"), bool(body.get("stream"))
                if self.path.endswith("/messages") and mode in ("ok", "400"):
                    cloud.bodies.append(body)
                    if mode == "400":
                        err = {"type": "error", "error": {"type": "invalid_request_error", "message": "fake 400"}}
                        return self._send(400, json.dumps(err).encode())
                    return self._send(200, json.dumps(_message(model)).encode())
                if mode in ("429", "500", "400"):
                    err = {"error": {"message": f"fake {mode}", "type": "fake", "param": None, "code": mode}}
                    return self._send(int(mode), json.dumps(err).encode())
                if mode == "slow" and cloud.closing.wait(cloud.slow_s):
                    return None
                if mode == "cut":
                    self.connection.close()
                    return None
                if mode == "cutlater":
                    self.send_response(200)
                    if stream:
                        self.send_header("Content-Type", "text/event-stream")
                        self.end_headers()
                        self.wfile.write(_chunk(model, {"role": "assistant", "content": "partial "}))
                    else:
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", "500")
                        self.end_headers()
                        self.wfile.write(b'{"id": "chatcmpl-fake", "choi')
                    self.wfile.flush()
                    self.connection.close()
                    return None
                cloud.bodies.append(body)
                if not stream:
                    return self._send(200, json.dumps(_completion(model)).encode())
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(_chunk(model, {"role": "assistant", "content": ""}))
                for word in ("cloud ", "says ", "hi"):
                    self.wfile.write(_chunk(model, {"content": word}))
                self.wfile.write(_chunk(model, {}, "stop"))
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
                             "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}
                    self.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def base(self, mode: str) -> str:
        return f"{self.url}/{mode}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
