"""Start a ``slmnode serve`` child process on a free loopback port and time its cold start:
process start → listening → model loaded → first streamed token."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from slmnode.bench.client import BenchClient, Endpoint
from slmnode.errors import BenchError

_LISTEN = re.compile(r"listening on (http://\S+)")
_SETTINGS = re.compile(r"^model (\S+) .*threads (\d+), ctx (\d+)")
_READY = re.compile(r"^ready: model loaded in ([0-9.]+) s")
_FAILED = re.compile(r"^error(?::|\b)\s*(.*)")


@dataclass
class NodeLaunch:
    """A running node the bench started; ``stop()`` ends it."""

    proc: subprocess.Popen[str]
    base_url: str
    model: str
    threads: int
    ctx: int
    load_s: float
    ready_s: float  # process start → model loaded
    cold_start_s: float  # process start → first token of a streamed request
    log: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def node_args(model: str | None, threads: int | None, ctx: int | None) -> list[str]:
    args = []
    if model:
        args += ["--model", model]
    if threads:
        args += ["--threads", str(threads)]
    if ctx:
        args += ["--ctx", str(ctx)]
    return args


def launch_node(model: str | None = None, threads: int | None = None, ctx: int | None = None, *,
                timeout: float = 600.0, env: dict[str, str] | None = None) -> NodeLaunch:
    """Start a node and return once it has streamed its first token (raises BenchError if it fails)."""
    cmd = [sys.executable, "-m", "slmnode", "serve", "--host", "127.0.0.1", "--port", "0",
           *node_args(model, threads, ctx)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    lines: queue.Queue[str | None] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    url = name = None
    n_threads = n_ctx = 0
    deadline = t0 + timeout
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.perf_counter()))
            except queue.Empty:
                raise BenchError(f"slmnode serve did not become ready within {timeout:.0f} s") from None
            if line is None:
                tail = "".join(log[-5:]).strip()
                raise BenchError(f"slmnode serve exited ({proc.wait()}) before it was ready: {tail}")
            if m := _LISTEN.search(line):
                url = m.group(1)
            elif m := _SETTINGS.search(line):
                name, n_threads, n_ctx = m.group(1), int(m.group(2)), int(m.group(3))
            elif m := _READY.search(line):
                load_s, ready_s = float(m.group(1)), time.perf_counter() - t0
                break
            elif (m := _FAILED.search(line)) and url:
                raise BenchError(f"the node could not load the model: {m.group(1).strip()}")
        assert url is not None
        with BenchClient(Endpoint(url, name)) as client:
            sent_s = time.perf_counter() - t0
            first = client.stream_complete("Once upon a time", 2, temperature=0)
        cold = sent_s + first.ttft_s
        return NodeLaunch(proc, url, name or "", n_threads, n_ctx, load_s, ready_s, cold, log)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
