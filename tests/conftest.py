"""Shared fixtures.

- Every test gets its own empty ``SLMNODE_HOME`` (autouse), so nothing touches the user's files.
- ``embedded_home``: one session-wide home whose store holds both embedded models (placed once).
- ``smollm_path`` / ``gemma_path``: the GGUF of the embedded default (SmolLM2 135M Instruct) and of the
  second embedded model (Gemma 3 270M, a base model with sliding-window attention). A test that relies
  on Gemma's behaviour (its sliding window, its turn format, its sizes) pins ``gemma_path``.
- ``node``: one real ``slmnode serve`` subprocess on a free loopback port serving the default model,
  loaded once per session; readiness is read from its own log lines, not waited for with sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from slmnode.catalog.embedded import DEFAULT_EMBEDDED, GEMMA3, SMOLLM2
from slmnode.catalog.store import ModelStore

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _hermetic_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "slmnode-home"
    monkeypatch.setenv("SLMNODE_HOME", str(home))
    for key in [k for k in os.environ if k.startswith("SLMNODE_") and k != "SLMNODE_HOME"]:
        monkeypatch.delenv(key)
    return home


@pytest.fixture(scope="session")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("embedded-home")
    store = ModelStore(home / "models")
    store.ensure_embedded()
    assert {m.name for m in store.list()} == {SMOLLM2.name, GEMMA3.name}  # both placed at once
    return home


@pytest.fixture(scope="session")
def smollm_path(embedded_home: Path) -> Path:
    store = ModelStore(embedded_home / "models")
    return store.path_of(store.get(SMOLLM2.name))


@pytest.fixture(scope="session")
def gemma_path(embedded_home: Path) -> Path:
    store = ModelStore(embedded_home / "models")
    return store.path_of(store.get(GEMMA3.name))


@dataclass
class RunningNode:
    proc: subprocess.Popen[str]
    base_url: str
    model: str
    log: list[str]


class NodeProcess:
    """A real ``slmnode serve`` child process; stderr lines are collected by a thread."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.home = str(home)
        full_env = {**os.environ, "SLMNODE_HOME": str(home), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "slmnode", "serve", "--port", "0", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=full_env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 180) -> re.Match[str]:
        """Block until a log line matches ``pattern`` (fails if the process ends first)."""
        rx = re.compile(pattern)
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"node exited ({self.proc.wait()}) before /{pattern}/:\n{''.join(self.log)}")
            if m := rx.search(line):
                return m

    def wait_for_in_log(self, pattern: str, timeout: float = 180) -> re.Match[str]:
        """Like :meth:`wait_for`, but a line already read also counts (order of lines doesn't matter)."""
        for line in list(self.log):
            if m := re.search(pattern, line):
                return m
        return self.wait_for(pattern, timeout)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_node(home: Path, *args: str, env: dict[str, str] | None = None, wait_ready: bool = True) -> tuple[NodeProcess, str]:
    p = NodeProcess(home, *args, env=env)
    url = p.wait_for(r"listening on (http://\S+)").group(1)
    if wait_ready:
        p.wait_for(r"^ready: model loaded")
    return p, url


@pytest.fixture(scope="session")
def node(embedded_home: Path) -> Iterator[RunningNode]:
    p, url = start_node(embedded_home, "--ctx", "2048")
    yield RunningNode(p.proc, url, DEFAULT_EMBEDDED.name, p.log)
    p.stop()


def decode_step_s(base_url: str, model: str) -> float:
    """Seconds per decode step of the node at ``base_url``, now: from its own timings of a short greedy run.

    Tests derive their deadlines from it (a multiple of the step time, never a fixed number of
    seconds), so they hold on a slow, loaded or pinned machine as on a fast one.
    """
    import httpx

    r = httpx.post(f"{base_url}/v1/completions", json={"model": model, "prompt": "1, 2, 3, 4,", "max_tokens": 16,
                                                        "temperature": 0}, timeout=600)
    assert r.status_code == 200, r.text
    t = r.json()["timings"]
    if int(t["predicted_n"]) < 2:  # ended at its first token: the prompt pass is one (long) step
        return float(t["prompt_ms"]) / 1000
    return float(t["predicted_ms"]) / 1000 / (int(t["predicted_n"]) - 1)
