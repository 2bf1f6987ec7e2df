"""Helpers shared by the benchmark scripts (scripts, not tests: polling a server is fine here)."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    """Poll until the server answers 200, or fail if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}: {' '.join(map(str, proc.args))}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout} s")


def embedded_model(threads: int, n_ctx: int = 4096, n_seq: int = 4):  # type: ignore[no-untyped-def]
    """The embedded model in the engine's own ``LoadedModel`` (in-process benchmarks)."""
    from slmnode.catalog.store import ModelStore
    from slmnode.engine.model import LoadedModel

    store = ModelStore()
    path = str(store.path_of(store.ensure_embedded()))
    return LoadedModel(path, n_ctx=n_ctx, n_threads=threads, n_batch=512, n_ubatch=512, n_seq=n_seq)
