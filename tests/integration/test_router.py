"""The router between real parts: this node, a second real node as "cloud", a failing HTTP server, the
real openai client, the labeled privacy corpus, the ledger under kill -9 and `slmnode costs`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from slmnode.router.classify import LOCAL_TASKS, TASKS
from slmnode.router.privacy import scan_text
from tests.conftest import DATA, NodeProcess, start_node
from tests.fakecloud import FakeCloud

pytestmark = pytest.mark.integration
CLOUD_KEY = "cloud-node-secret"


@dataclass
class Routed:
    url: str
    home: Path
    proc: NodeProcess
    fake: FakeCloud


@pytest.fixture(scope="module")
def routed(embedded_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routed]:
    """A router node whose default upstream is a second real node; the others fail in set ways."""
    cloud_proc, cloud_url = start_node(embedded_home, "--ctx", "1024", "--api-key", CLOUD_KEY)
    home = tmp_path_factory.mktemp("router-home")
    (home / "models").symlink_to(embedded_home / "models")
    proc: NodeProcess | None = None
    try:
        with FakeCloud(slow_s=5) as fake:
            ups = [("bignode", f"{cloud_url}/v1", "gemma3:270m-pt-q4_k_m", 120)]
            ups += [(f"f{mode}", fake.base(mode), "fake", 2) for mode in ("429", "slow", "cut", "ok")]
            ups.append(("fdown", "http://127.0.0.1:9/v1", "fake", 2))  # nothing listens on the discard port
            config = home / "node.toml"
            config.write_text('ctx = 1024\n[router]\nbreaker_failures = 100\nclassifier = "model"\n' + "".join(
                f'[[upstreams]]\nname = "{n}"\nbase_url = "{u}"\nmodel = "{m}"\napi_key_env = "ROUTER_TEST_CLOUD_KEY"\n'
                f'input_usd_per_mtok = 0.25\noutput_usd_per_mtok = 1.5\ntimeout = {t}\n' for n, u, m, t in ups))
            proc, url = start_node(home, "--config", str(config), env={"ROUTER_TEST_CLOUD_KEY": CLOUD_KEY})
            yield Routed(url, home, proc, fake)
    finally:
        if proc is not None:
            proc.stop()
        cloud_proc.stop()


def _client(r: Routed) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{r.url}/v1", api_key="agent-1", max_retries=0)


def test_openai_client_auto_route_local_and_cloud(routed: Routed) -> None:
    client = _client(routed)
    local = client.chat.completions.with_raw_response.create(
        model="auto", max_tokens=4, messages=[{"role": "user", "content": "Classify the sentiment: 'I love it'"}])
    assert local.headers["x-slmnode-route"] == "local" and local.headers["x-slmnode-task"] == "classification"
    assert local.parse().choices[0].message.content is not None
    cloud = client.chat.completions.with_raw_response.create(
        model="auto", max_tokens=4, messages=[{"role": "user", "content": "Write a Python function to add numbers"}])
    assert cloud.headers["x-slmnode-route"] == "bignode" and cloud.headers["x-slmnode-task"] == "code"
    answer = cloud.parse()
    assert answer.usage is not None and answer.usage.completion_tokens >= 1
    # streaming through the cloud path with the real client
    with client.chat.completions.with_streaming_response.create(
            model="auto", max_tokens=4, stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Write a haiku about snow"}]) as resp:
        assert resp.headers["x-slmnode-route"] == "bignode"
        chunks = list(resp.parse())
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1


def test_the_local_model_classifies_what_no_rule_recognises(routed: Routed) -> None:
    r = httpx.post(f"{routed.url}/v1/chat/completions", timeout=60, json={
        "model": "auto", "max_tokens": 2, "messages": [{"role": "user", "content": "Good morning, Ada!"}]})
    assert r.status_code == 200
    assert r.headers["x-slmnode-task"] in TASKS
    assert "the local model classified it" in r.headers["x-slmnode-route-reason"]
    expected = "local" if r.headers["x-slmnode-task"] in LOCAL_TASKS else "bignode"
    assert r.headers["x-slmnode-route"] == expected


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("upstream", ["f429", "fslow", "fcut", "fdown"])
def test_failing_upstream_falls_back_to_the_real_cloud_node(routed: Routed, upstream: str, stream: bool) -> None:
    body = {"model": upstream, "max_tokens": 3, "stream": stream,
            "messages": [{"role": "user", "content": "Write a poem"}]}
    r = httpx.post(f"{routed.url}/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    reason = r.headers["x-slmnode-route-reason"]
    assert r.headers["x-slmnode-route"] == "bignode" and reason.startswith(f"pinned: model {upstream}; after {upstream}: ")
    if stream:
        assert r.text.rstrip().endswith("data: [DONE]") and '"finish_reason": "length"' in r.text
    else:
        assert r.json()["usage"]["completion_tokens"] == 3


def test_pii_samples_stay_on_this_node(routed: Routed) -> None:
    """Two PII snippets of every kind from the labeled corpus, sent with `X-Slmnode-Route: cloud` and
    pinned to a recording upstream: none reaches it, while clean snippets do (so the test can fail).
    The whole corpus goes through the same router on a fake engine in tests/unit/router/."""
    corpus = [json.loads(line) for line in (DATA / "privacy" / "corpus.jsonl").read_text().splitlines() if line]
    private: list[dict[str, object]] = []
    for kind in sorted({k for s in corpus for k in s["kinds"]}):
        private += [s for s in corpus if s["pii"] and s["kinds"] == [kind]][:2]
    clean = [s for s in corpus if not s["pii"] and not scan_text(str(s["text"]))][:6]
    before = len(routed.fake.bodies)
    results = asyncio.run(_route_all(routed.url, private + clean))
    assert [s["id"] for s, route in results if s["pii"] and route != "local"] == []
    sent = json.dumps(routed.fake.bodies[before:])
    assert all(str(s["text"]) not in sent for s in private)
    assert [route for s, route in results if not s["pii"]] == ["fok"] * len(clean)


async def _route_all(url: str, snippets: list[dict[str, object]]) -> list[tuple[dict[str, object], str]]:
    sem = asyncio.Semaphore(4)
    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        async def one(s: dict[str, object]) -> tuple[dict[str, object], str]:
            async with sem:
                body = {"model": "fok", "max_tokens": 1, "messages": [{"role": "user", "content": s["text"]}]}
                r = await c.post("/v1/chat/completions", json=body, headers={"X-Slmnode-Route": "cloud"})
                assert r.status_code == 200, r.text
                return s, r.headers["x-slmnode-route"]
        return list(await asyncio.wait_for(asyncio.gather(*(one(s) for s in snippets)), 600))


def test_costs_cli_reports_what_the_router_recorded(routed: Routed) -> None:
    httpx.post(f"{routed.url}/v1/chat/completions", timeout=60, headers={"Authorization": "Bearer agent-7"},
               json={"model": "auto", "max_tokens": 2, "messages": [{"role": "user", "content": "Label this: ok"}]})
    out = subprocess.run([sys.executable, "-m", "slmnode", "costs", "--json"], capture_output=True, text=True,
                         env={**os.environ, "SLMNODE_HOME": str(routed.home)}, check=True, timeout=60)
    report = json.loads(out.stdout)
    assert report["total"]["local"] >= 1 and report["total"]["cloud"] >= 1
    keys = {k["api_key"] for k in report["by_api_key"]}
    assert any(k.startswith("sha256:") for k in keys) and "agent-7" not in json.dumps(report)
    assert {r["route"] for r in report["by_route"]} >= {"local", "bignode"}


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from slmnode.router.ledger import Ledger, LedgerRow
    ledger = Ledger(Path(sys.argv[1]))
    i = 0
    while True:
        rid = ledger.record(LedgerRow(route="local", reason="r" * 200, task="t", model="m", status="ok",
                                      stream=False, tokens_in=i, tokens_out=i, latency_s=0.1, cost_usd=1e-6,
                                      reference_usd=2e-6, api_key="k"))
        print(rid, flush=True)
        i += 1
""")


@pytest.mark.parametrize("after", [1, 37, 250])
def test_kill_9_during_ledger_writes_leaves_a_sound_ledger(tmp_path: Path, after: int) -> None:
    db = tmp_path / "ledger.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acked = [int(proc.stdout.readline()) for _ in range(after)]
    os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the writer is inside its next INSERT/commit
    proc.wait(timeout=30)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = {r[0] for r in con.execute("SELECT id FROM requests")}
    assert set(acked) <= ids  # every acknowledged row survived
    con.close()
