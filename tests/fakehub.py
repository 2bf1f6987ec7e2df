"""A local HTTP server that answers like the Hugging Face hub, for pull tests (loopback only).

Two servers on 127.0.0.1 free ports, as on the real hub: the **hub** origin answers
``HEAD|GET /<owner>/<repo>/resolve/<rev>/<file>`` with a 302 to the **CDN** origin and the hub's
metadata headers (``X-Repo-Commit``, ``X-Linked-Etag`` = the LFS sha256, ``X-Linked-Size``, ``ETag``),
or with 404/401 and ``X-Error-Code`` (``EntryNotFound``, ``RevisionNotFound``, ``RepoNotFound``); and
``GET /api/models/<owner>/<repo>[/revision/<rev>]`` (the model-info API, ``siblings[].lfs.sha256`` with
``?blobs=true``). The CDN serves the bytes with ``Range`` (206 + ``Content-Range``), ``Accept-Ranges`` and
an ``ETag``. No Xet headers, so huggingface_hub uses plain HTTP. Files are served from disk.

Knobs for failure tests: ``cut_after`` (the next body GET sends only that many bytes, then closes the
connection), ``fail_next_gets`` (answer that many later body GETs with 503), ``advertise_sha256``
(send a different sha256 than the file's). ``requests`` records every request (method, path, headers).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFile:
    path: Path
    size: int
    sha256: str
    advertise_sha256: str | None = None  # what the hub claims (corruption tests)


@dataclass
class Request:
    server: str  # hub | cdn
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class HubState:
    repos: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    cut_after: int | None = None
    fail_next_gets: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def body_gets(self, filename: str | None = None) -> list[Request]:
        """GET requests for file bytes (on the CDN), optionally for one file name."""
        with self.lock:
            return [r for r in self.requests if r.server == "cdn" and r.method == "GET"
                    and (filename is None or r.path.endswith(("file=" + filename, "/" + filename)))]

    def resolve_heads(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.server == "hub" and "/resolve/" in r.path]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HubState
    role: str  # hub | cdn
    cdn_base: str

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _record(self) -> None:
        with self.state.lock:
            self.state.requests.append(Request(self.role, self.command, self.path, dict(self.headers.items())))

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self._record()
        try:
            if self.role == "cdn":
                self._cdn()
            else:
                self._hub()
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- hub origin -----------------------------------------------------------------------------
    def _hub(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path):
            return self._model_info(m.group(1), m.group(2) or "main", "blobs" in parse_qs(url.query))
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if not m:
            return self._send(404, {"Content-Type": "text/plain"}, b"not found")
        repo_id, rev, filename = m.groups()
        files = self.state.repos.get(repo_id)
        if files is None:
            return self._send(401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
        if rev not in ("main", COMMIT):
            return self._send(404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"})
        f = files.get(filename)
        if f is None:
            return self._send(404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                                    "X-Repo-Commit": COMMIT})
        sha = f.advertise_sha256 or f.sha256
        self._send(302, {
            "Location": f"{self.cdn_base}/cdn/{sha}?file={filename}",
            "X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(f.size),
            "ETag": f'"{sha}"', "Accept-Ranges": "bytes",
        })

    def _model_info(self, repo_id: str, rev: str, blobs: bool) -> None:
        files = self.state.repos.get(repo_id)
        if files is None:
            return self._send(401, {"X-Error-Code": "RepoNotFound"})
        siblings: list[dict[str, Any]] = []
        for name, f in sorted(files.items()):
            s: dict[str, Any] = {"rfilename": name}
            if blobs:
                sha = f.advertise_sha256 or f.sha256
                s |= {"size": f.size, "blobId": sha[:40], "lfs": {"sha256": sha, "size": f.size, "pointerSize": 135}}
            siblings.append(s)
        body = json.dumps({"id": repo_id, "modelId": repo_id, "sha": COMMIT, "private": False,
                           "siblings": siblings}).encode()
        self._send(200, {"Content-Type": "application/json"}, body)

    # -- CDN origin -----------------------------------------------------------------------------
    def _cdn(self) -> None:
        url = urlsplit(self.path)
        filename = parse_qs(url.query).get("file", [""])[0]
        if url.path.startswith("/files/"):  # a plain web server path, for https-URL pulls
            filename = unquote(url.path.rsplit("/", 1)[-1])
        f = next((f for files in self.state.repos.values() for n, f in files.items() if n == filename), None)
        if f is None:
            return self._send(404, {})
        start, end = 0, f.size - 1
        status = 200
        if rng := self.headers.get("Range"):
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if not m or int(m.group(1)) >= f.size:
                return self._send(416, {"Content-Range": f"bytes */{f.size}"})
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else end
            status = 206
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
                   "ETag": f'"{f.sha256}"', "Content-Length": str(end - start + 1)}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        if self.command == "GET":
            with self.state.lock:
                if self.state.fail_next_gets and self.state.cut_after is None:
                    self.state.fail_next_gets -= 1
                    fail = True
                else:
                    fail = False
                cut, self.state.cut_after = self.state.cut_after, None
            if fail:
                return self._send(503, {"Content-Type": "text/plain"}, b"try later")
        else:
            cut = None
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        remaining = end - start + 1 if cut is None else min(cut, end - start + 1)
        with f.path.open("rb") as fh:
            fh.seek(start)
            while remaining > 0:
                block = fh.read(min(1 << 20, remaining))
                if not block:
                    break
                self.wfile.write(block)
                remaining -= len(block)
        if cut is not None:  # drop the connection mid-body, like a network failure
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)


class FakeHub:
    """``with FakeHub() as hub: hub.add("owner/repo", "file.gguf", path)``; ``hub.url`` is HF_ENDPOINT."""

    def __init__(self) -> None:
        self.state = HubState()
        self._servers: list[ThreadingHTTPServer] = []
        cdn = self._serve("cdn", "")
        self.cdn_url = f"http://127.0.0.1:{cdn.server_address[1]}"
        hub = self._serve("hub", self.cdn_url)
        self.url = f"http://127.0.0.1:{hub.server_address[1]}"

    def _serve(self, role: str, cdn_base: str) -> ThreadingHTTPServer:
        handler = type(f"{role}Handler", (_Handler,), {"state": self.state, "role": role, "cdn_base": cdn_base})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._servers.append(server)
        return server

    def add(self, repo_id: str, filename: str, path: Path, *, sha256: str | None = None) -> HubFile:
        f = HubFile(path, path.stat().st_size, sha256 or sha256_of(path))
        self.state.repos.setdefault(repo_id, {})[filename] = f
        return f

    def close(self) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

