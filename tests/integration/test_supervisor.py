"""Fault, load and heat tests against real nodes (loopback only, bounded in count and time).

Timeouts given to the nodes and deadlines of the tests are multiples of the decode step time measured
on this machine when the module starts (``decode_step_s``), never fixed numbers of seconds alone, so
they hold on a slow, loaded or pinned machine; requests that must run long use a grammar that cannot
end before ``max_tokens``, so no test relies on the model not stopping first.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from slmnode.catalog.embedded import DEFAULT_EMBEDDED
from tests.conftest import NodeProcess, RunningNode, decode_step_s, start_node

pytestmark = pytest.mark.integration
CHAT = "/v1/chat/completions"


def _req(max_tokens: int = 4, content: str = "hi") -> dict:
    return {"model": DEFAULT_EMBEDDED.name, "max_tokens": max_tokens, "messages": [{"role": "user", "content": content}]}


def _endless(max_tokens: int) -> dict:
    """A request that runs to ``max_tokens`` whatever the model would like: its answer must be a string of
    more digits than that, and the embedded models (SmolLM2, Gemma 3) have no token of two digits, so the
    grammar never lets it end."""
    schema = {"type": "string", "pattern": f"^[0-9]{{{max_tokens + 1},}}$"}
    return {**_req(max_tokens, "Write a very long number."),
            "response_format": {"type": "json_schema", "json_schema": {"name": "digits", "schema": schema}}}


@pytest.fixture(scope="module")
def step_s(node: RunningNode) -> float:
    """Seconds per decode step on this machine now (from the session node's own timings)."""
    return decode_step_s(node.base_url, node.model)


def hang_timeout(step_s: float) -> float:
    """Longer than any pause of a working engine: a heartbeat period (1 s) plus 100 decode steps."""
    return max(3.0, 1.0 + 100 * step_s)


def _wait(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """Poll a condition (each poll is a real HTTP round trip) until it holds or time runs out."""
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"


def _worker(p: NodeProcess) -> psutil.Process:
    (w,) = psutil.Process(p.proc.pid).children()
    return w


@pytest.fixture()
def fast_node(embedded_home: Path, step_s: float) -> Iterator[tuple[NodeProcess, str]]:
    env = {"SLMNODE_HANG_TIMEOUT": f"{hang_timeout(step_s):.2f}", "SLMNODE_CANARY_INTERVAL": "0"}
    p, url = start_node(embedded_home, "--ctx", "1024", env=env)
    yield p, url
    p.stop()


def test_kill_mid_stream_restarts_and_queued_request_proceeds(fast_node: tuple[NodeProcess, str]) -> None:
    p, url = fast_node
    first = _worker(p)
    queued: dict[str, httpx.Response] = {}
    with httpx.Client(base_url=url, timeout=120) as c:
        with c.stream("POST", CHAT, json={**_endless(900), "stream": True}) as r:  # still running when killed
            lines = r.iter_lines()
            while '"content"' not in next(lines):
                pass
            t = threading.Thread(target=lambda: queued.update(r=httpx.post(f"{url}{CHAT}", json=_req(3), timeout=120)))
            t.start()
            _wait(lambda: "slmnode_queue_depth 1.0" in c.get("/metrics").text, 30, "the second request to queue")
            os.kill(first.pid, signal.SIGKILL)
            rest = "\n".join(lines)
        assert "engine_crashed" in rest and rest.rstrip().endswith("data: [DONE]")
        states = set()
        _wait(lambda: states.add(c.get("/health").json()["status"]) or "ok" in states, 60, "health ok again")
        assert "loading" in states or "error" in states  # it said so while restarting
        t.join(60)
        assert queued["r"].status_code == 200, queued["r"].text  # the queued request ran after the restart
        assert _worker(p).pid != first.pid
    kinds = [e["kind"] for e in _events(p)]
    assert "crash" in kinds and "restarted" in kinds


def _events(p: NodeProcess) -> list[dict]:
    import json
    import sys
    out = subprocess.run([sys.executable, "-m", "slmnode", "events", "--json"], capture_output=True, text=True,
                         env={**os.environ, "SLMNODE_HOME": p.home}, timeout=60)
    return json.loads(out.stdout)


def test_sigstop_is_a_hang_and_the_worker_is_replaced(fast_node: tuple[NodeProcess, str]) -> None:
    p, url = fast_node
    stopped = _worker(p)
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        # the request was queued behind the frozen worker: after the hang is detected it runs on the new one
        # (well before the node's request timeout of 600 s: this client gives up after 120 s)
        r = httpx.post(f"{url}{CHAT}", json=_req(3), timeout=120)
        assert r.status_code == 200, r.text
        assert _worker(p).pid != stopped.pid
    finally:
        if psutil.pid_exists(stopped.pid):
            os.kill(stopped.pid, signal.SIGCONT)
    events = _events(p)  # newest first (of every node that used this home)
    kinds = [e["kind"] for e in events]
    assert "hang" in kinds and "restarted" in kinds and kinds.index("restarted") < kinds.index("hang")
    assert "no heartbeat" in events[kinds.index("hang")]["message"]  # detected as a hang, then restarted


def test_100_concurrent_against_a_queue_of_16(embedded_home: Path) -> None:
    p, url = start_node(embedded_home, "--ctx", "512", "--max-queue", "16")
    try:
        rss = []
        for _ in range(3):
            codes = asyncio.run(_burst(url, 100))
            assert set(codes) <= {200, 503}, codes
            assert codes.count(200) >= 17 and codes.count(503) >= 1
            parent = psutil.Process(p.proc.pid)
            rss.append(parent.memory_info().rss + sum(ch.memory_info().rss for ch in parent.children()))
        assert rss[2] < rss[0] * 1.10, rss  # no growth across rounds
    finally:
        p.stop()


async def _burst(url: str, n: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        async def one() -> int:
            r = await c.post(CHAT, json=_req(2))
            if r.status_code == 503:
                assert r.headers["retry-after"] == "2" and r.json()["error"]["code"] == "queue_full"
            return r.status_code
        return list(await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 240))


def _zone(root: Path, milli: int) -> None:
    d = root / "sys/class/thermal/thermal_zone0"
    d.mkdir(parents=True, exist_ok=True)
    (d / "temp").write_text(f"{milli}\n")
    (d / "type").write_text("cpu-thermal\n")


def test_hot_thermal_zone_stops_new_work_until_cool(embedded_home: Path, tmp_path: Path) -> None:
    _zone(tmp_path, 50000)
    env = {"SLMNODE_HARDWARE_ROOT": str(tmp_path), "SLMNODE_THERMAL_INTERVAL": "0.2"}
    p, url = start_node(embedded_home, "--ctx", "512", env=env)
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.get("/health").json()["thermal"]["state"] == "normal"
            _zone(tmp_path, 90000)
            _wait(lambda: c.get("/health").json()["thermal"]["state"] == "hard", 20, "hard thermal state")
            r = c.post(CHAT, json=_req())
            assert r.status_code == 503 and r.json()["error"]["code"] == "thermal_limit" and r.headers["retry-after"] == "30"
            assert "slmnode_thermal_state 2.0" in c.get("/metrics").text
            _zone(tmp_path, 78000)  # below hard, above soft: still refusing (hysteresis)
            _wait(lambda: c.get("/health").json()["thermal"]["celsius"] == 78.0, 20, "78 °C read")
            assert c.post(CHAT, json=_req()).status_code == 503
            _zone(tmp_path, 60000)
            _wait(lambda: c.get("/health").json()["thermal"]["state"] == "normal", 20, "normal thermal state")
            assert c.post(CHAT, json=_req()).status_code == 200
    finally:
        p.stop()


def test_model_that_does_not_fit_is_refused_with_numbers(embedded_home: Path, tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text("MemTotal: 1024000 kB\nMemAvailable: 150000 kB\n")
    p, url = start_node(embedded_home, "--ctx", "512", env={"SLMNODE_HARDWARE_ROOT": str(tmp_path)}, wait_ready=False)
    try:
        p.wait_for_in_log(r"^error: not loading")
        h = httpx.get(f"{url}/health").json()
        assert h["status"] == "error" and "MiB is available" in h["error"]
        r = httpx.post(f"{url}{CHAT}", json=_req(), timeout=60)
        assert r.status_code == 503 and r.json()["error"]["code"] == "insufficient_memory"
    finally:
        p.stop()


def test_full_data_dir_keeps_serving(smollm_path: Path, tmp_path: Path) -> None:
    home = tmp_path / "full"
    home.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(home)], capture_output=True).returncode:
        pytest.skip("cannot mount a tiny tmpfs here")
    try:
        with open(home / "filler", "wb") as f:
            try:
                f.write(b"\0" * 64 * 1024)
            except OSError:
                pass  # the disk is now full
        p, url = start_node(home, "--model", str(smollm_path), "--ctx", "512")
        try:
            r = httpx.post(f"{url}{CHAT}", json={**_req(), "model": smollm_path.stem}, timeout=60)
            assert r.status_code == 200, r.text
            h = httpx.get(f"{url}/health").json()
            assert h["status"] == "ok" and h["events_writable"] is False
            assert any("cannot write the event log" in line for line in p.log)
        finally:
            p.stop()
    finally:
        subprocess.run(["umount", str(home)], check=False)


def test_request_timeout_is_504_and_frees_the_engine(embedded_home: Path, step_s: float) -> None:
    n = 3000  # an endless answer cut at n tokens: n steps at least, so a tenth of that is surely too short
    limit = max(1.0, n * step_s / 10)
    p, url = start_node(embedded_home, "--ctx", "4096", "--request-timeout", f"{limit:.2f}")
    try:
        with httpx.Client(base_url=url, timeout=600) as c:
            r = c.post(CHAT, json=_endless(n))
            assert r.status_code == 504 and r.json()["error"]["code"] == "request_timeout", r.text
            # stopped at the engine's next step (not after n): allow 100 steps
            _wait(lambda: "slmnode_engine_busy 0.0" in c.get("/metrics").text, max(5.0, 100 * step_s), "engine free")
            assert c.post(CHAT, json=_req(2)).status_code == 200
    finally:
        p.stop()
