"""The router's decisions and fallbacks, on a fake engine and a real local HTTP "cloud" (fast).

Proof that routing works between real nodes is in tests/integration/test_router.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from slmnode.config import Settings
from slmnode.errors import EngineError, QueueFull, ThermalLimit
from slmnode.router.config import KeyRule, RouterConfig, Upstream
from slmnode.router.ledger import Ledger
from slmnode.router.route import Router
from slmnode.server.app import create_app
from slmnode.server.models import ModelManager, ServedModel
from slmnode.server.service import Node
from tests.conftest import DATA
from tests.fakecloud import FakeCloud
from tests.unit.test_app_fake_engine import FakeEngine
from tests.unit.test_chat_format import GEMMA

CHAT = "/v1/chat/completions"


@pytest.fixture()
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud(slow_s=3) as c:
        yield c


def _app(tmp_path: Path, cloud: FakeCloud, upstreams: list[tuple[str, str]] | None = None,
         **router: Any) -> tuple[TestClient, Node, Router]:
    eng = FakeEngine("local answer")
    eng.release.set()
    node = Node(models=ModelManager(ServedModel("fake:1", "/x.gguf", GEMMA), lambda m: eng),  # type: ignore[arg-type,return-value]
                settings=Settings(ctx=512))
    ups = [Upstream(name=name, base_url=cloud.base(mode), model=f"model-{name}", api_key_env="FAKE_CLOUD_KEY",
                    input_usd_per_mtok=0.25, output_usd_per_mtok=1.50, timeout=1.0)
           for name, mode in (upstreams or [("main", "ok")])]
    r = Router(RouterConfig(upstreams=ups, **router), Ledger(tmp_path / "ledger.db"))
    node.router, node.api_keys = r, dict(r.key_names)
    node.services.append(r)
    return TestClient(create_app(node)), node, r


def _ask(client: TestClient, text: str, model: str = "auto", headers: dict[str, str] | None = None,
         **extra: Any) -> Any:
    return client.post(CHAT, json={"model": model, "messages": [{"role": "user", "content": text}], **extra},
                       headers=headers or {})


ROUTES = [
    ("Classify the sentiment of this review: 'great battery, awful screen'", "local", "classification"),
    ("Extract the invoice number and total from: Invoice 4711, total 93.10 EUR", "local", "extraction"),
    ("Summarize this paragraph in one sentence: The meeting moved to Tuesday.", "local", "summarization"),
    ("Convert this list to JSON: apples, pears, plums", "local", "formatting"),
    ("Which team should handle this ticket: 'printer on floor 3 is jammed'?", "local", "routing"),
    ("Write a Python function that merges two sorted lists", "main", "code"),
    ("Write a short story about a lighthouse keeper", "main", "creative"),
    ("Explain step by step why the sum of two odd numbers is even, then prove it", "main", "reasoning"),
    ("Hello there", "local", "unknown"),
]


@pytest.mark.parametrize(("text", "route", "task"), ROUTES)
def test_auto_routes_by_task_and_says_why(tmp_path: Path, cloud: FakeCloud, monkeypatch: pytest.MonkeyPatch,
                                          text: str, route: str, task: str) -> None:
    monkeypatch.setenv("FAKE_CLOUD_KEY", "sk-test-cloud")
    client, _, router = _app(tmp_path, cloud)
    with client:
        r = _ask(client, text)
        assert r.status_code == 200, r.text
        assert (r.headers["x-slmnode-route"], r.headers["x-slmnode-task"]) == (route, task)
        assert r.headers["x-slmnode-route-reason"]
        content = r.json()["choices"][0]["message"]["content"]
        assert ("cloud says hi" in content) == (route == "main")
        if route == "main":
            assert cloud.bodies[-1]["model"] == "model-main" and cloud.auth[-1] == "Bearer sk-test-cloud"
        row = router.ledger.rows()[0]
        assert (row["route"], row["task"], row["status"]) == (route, task, "ok")
        assert row["model"] == ("model-main" if route == "main" else "default")


def test_ledger_costs_cloud_by_price_and_local_by_energy(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, router = _app(tmp_path, cloud, local_watts=6.4, usd_per_kwh=0.30)
    with client:
        _ask(client, "Write a poem about rain")
        _ask(client, "Classify: spam or not? 'You won a prize'")
    cloud_row, local_row = sorted(router.ledger.rows(), key=lambda r: r["route"] == "local")
    assert (cloud_row["tokens_in"], cloud_row["tokens_out"]) == (11, 3)
    assert cloud_row["cost_usd"] == pytest.approx((11 * 0.25 + 3 * 1.50) / 1e6)
    assert cloud_row["reference_usd"] == pytest.approx(cloud_row["cost_usd"])  # the first upstream is the reference
    # fake engine: 10 ms prompt + 10 ms generation at 6.4 W and $0.30/kWh
    assert local_row["cost_usd"] == pytest.approx(6.4 * 0.02 / 3.6e6 * 0.30)
    assert local_row["reference_usd"] == pytest.approx((7 * 0.25 + 2 * 1.50) / 1e6)


def test_private_data_stays_local_even_when_cloud_is_pinned(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, router = _app(tmp_path, cloud)
    with client:
        for model, headers in (("main", {}), ("cloud", {}), ("auto", {"X-Slmnode-Route": "cloud"})):
            r = _ask(client, "Write a story for jane.doe@example.com", model=model, headers=headers)
            assert r.headers["x-slmnode-route"] == "local", model
            assert "private data (email" in r.headers["x-slmnode-route-reason"]
            assert "jane.doe" not in r.headers["x-slmnode-route-reason"]
    assert cloud.hits["ok"] == 0
    assert all("jane.doe" not in row["reason"] for row in router.ledger.rows())


def test_no_pii_snippet_of_the_corpus_reaches_an_upstream(tmp_path: Path, cloud: FakeCloud) -> None:
    """Every PII snippet of the labeled corpus (tests/data/privacy), pinned to the cloud and asked for
    cloud by header, is answered here; the recording upstream never sees one."""
    corpus = [json.loads(line) for line in (DATA / "privacy" / "corpus.jsonl").read_text().splitlines() if line]
    private = [s for s in corpus if s["pii"]]
    assert len(private) >= 150
    client, _, router = _app(tmp_path, cloud)
    with client:
        routes = [_ask(client, s["text"], model="main", headers={"X-Slmnode-Route": "cloud"}).headers["x-slmnode-route"]
                  for s in private]
        control = _ask(client, "Write a poem about autumn leaves", model="main")
    assert [s["id"] for s, r in zip(private, routes, strict=True) if r != "local"] == []
    assert cloud.hits["ok"] == 1 and control.headers["x-slmnode-route"] == "main"  # the upstream works
    assert len(router.ledger.rows(limit=1000)) == len(private) + 1


def test_image_parts_never_leave_because_the_guard_cannot_read_them(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, _ = _app(tmp_path, cloud)
    parts = [{"type": "text", "text": "Write a poem about this photo"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    with client:
        r = client.post(CHAT, json={"model": "main", "messages": [{"role": "user", "content": parts}]})
    assert r.headers["x-slmnode-route"] == "local" and "unscannable content (image_url)" in r.headers["x-slmnode-route-reason"]
    assert r.status_code == 400 and "image" in r.json()["error"]["message"]  # this node has no vision model
    assert cloud.hits["ok"] == 0


def test_redact_mode_masks_before_sending(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, _ = _app(tmp_path, cloud, privacy="redact")
    with client:
        r = _ask(client, "Write a poem for jane.doe@example.com, card 4111 1111 1111 1111")
    assert r.headers["x-slmnode-route"] == "main" and "redacted" in r.headers["x-slmnode-route-reason"]
    sent = json.dumps(cloud.bodies[-1])
    assert "jane.doe@example.com" not in sent and "4111 1111 1111 1111" not in sent
    assert "Write a poem for" in sent


def test_header_and_api_key_overrides(tmp_path: Path, cloud: FakeCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_KEY", "bot-secret")
    monkeypatch.setenv("CLOUDY_KEY", "cloudy-secret")
    client, _, router = _app(tmp_path, cloud, keys=[KeyRule(name="bot", key_env="BOT_KEY", route="local"),
                                                    KeyRule(name="cloudy", key_env="CLOUDY_KEY", route="cloud")])
    bot, cloudy = {"Authorization": "Bearer bot-secret"}, {"Authorization": "Bearer cloudy-secret"}
    with client:
        assert _ask(client, "Write a story", headers=bot).headers["x-slmnode-route"] == "local"
        assert _ask(client, "Classify this: 'hi'", headers=cloudy).headers["x-slmnode-route"] == "main"
        r = _ask(client, "Write a story", headers={**bot, "X-Slmnode-Route": "cloud"})
        assert r.headers["x-slmnode-route"] == "main"  # the header beats the key's default
        assert _ask(client, "Write a story", headers={"Authorization": "Bearer wrong"}).status_code == 401
        bad = _ask(client, "x", headers={**bot, "X-Slmnode-Route": "moon"})
        assert bad.status_code == 400 and "X-Slmnode-Route" in bad.json()["error"]["message"]
    assert {row["api_key"] for row in router.ledger.rows()} == {"bot", "cloudy"}
    assert all("secret" not in row["api_key"] for row in router.ledger.rows())


@pytest.mark.parametrize("refusal", [ThermalLimit("too hot: 83 °C"), QueueFull("32 requests are waiting")])
def test_overloaded_local_overflows_to_cloud_unless_private(tmp_path: Path, cloud: FakeCloud,
                                                            refusal: EngineError) -> None:
    client, node, router = _app(tmp_path, cloud)

    def gate() -> None:
        raise refusal

    with client:
        node.models.gates.append(gate)
        r = _ask(client, "Classify this: 'hi'")
        assert r.headers["x-slmnode-route"] == "main"
        assert r.headers["x-slmnode-route-reason"].startswith(f"local {refusal.code} -> cloud")
        private = _ask(client, "Classify this: 'call me at +1 202 555 0143'")
        assert private.status_code == 503 and private.json()["error"]["code"] == refusal.code
        assert private.headers["retry-after"] == str(refusal.retry_after)
        pinned = _ask(client, "Classify this", model="local")
        assert pinned.status_code == 503
    assert [row["status"] for row in router.ledger.rows()] == ["error", "error", "ok"]


@pytest.mark.parametrize(("mode", "stream"), [(m, s) for m in ("429", "500", "slow", "cut", "cutlater") for s in (False, True)
                                             if (m, s) != ("cutlater", True)])  # that one: next test
def test_failing_upstream_falls_back_to_the_next(tmp_path: Path, cloud: FakeCloud, mode: str, stream: bool) -> None:
    client, _, router = _app(tmp_path, cloud, upstreams=[("flaky", mode), ("main", "ok")])
    with client:
        r = _ask(client, "Write a poem", stream=stream)
        assert r.status_code == 200
        assert r.headers["x-slmnode-route"] == "main"
        assert "after flaky: " in r.headers["x-slmnode-route-reason"]
        text = r.text if stream else r.json()["choices"][0]["message"]["content"]
        assert "cloud" in text and "says" in text
        if stream:
            assert r.text.rstrip().endswith("data: [DONE]") and '"usage"' not in r.text  # not asked for
    assert cloud.hits[mode] == 1
    assert router.ledger.rows()[0]["tokens_out"] == 3


def test_circuit_opens_after_failures_and_half_opens_after_cooldown(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, router = _app(tmp_path, cloud, upstreams=[("flaky", "500"), ("main", "ok")], breaker_failures=2,
                             breaker_cooldown=30)
    now = [1000.0]
    router.breakers["flaky"].clock = lambda: now[0]
    with client:
        for _ in range(2):
            _ask(client, "Write a poem")
        r = _ask(client, "Write a poem")
        assert "flaky: circuit open" in r.headers["x-slmnode-route-reason"] and cloud.hits["500"] == 2
        now[0] += 31  # cooldown over: one trial goes through, fails, the circuit opens again
        _ask(client, "Write a poem")
        assert cloud.hits["500"] == 3 and router.breakers["flaky"].state.value == "open"
        assert client.get("/health").json()["upstreams"] == {"flaky": "open", "main": "closed"}


def test_all_upstreams_down_falls_back_to_local_or_says_502(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, _ = _app(tmp_path, cloud, upstreams=[("a", "500"), ("b", "429")])
    with client:
        r = _ask(client, "Write a poem", stream=True)
        assert r.headers["x-slmnode-route"] == "local" and "upstreams failed" in r.headers["x-slmnode-route-reason"]
        assert "local" in r.text and r.text.rstrip().endswith("[DONE]")
    client, _, router = _app(tmp_path / "2", cloud, upstreams=[("a", "500")], fallback_to_local=False)
    with client:
        r = _ask(client, "Write a poem")
        assert r.status_code == 502
        err = r.json()["error"]
        assert err["code"] == "upstream_unavailable" and "a: HTTP 500" in err["message"]
    assert router.ledger.rows()[0]["status"] == "error"


def test_stream_cut_after_first_chunk_ends_with_an_error_event(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, router = _app(tmp_path, cloud, upstreams=[("flaky", "cutlater")])
    with client:
        r = _ask(client, "Write a poem", model="flaky", stream=True)
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert "partial" in events[0] and events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "upstream_stream_cut"
    assert router.ledger.rows()[0]["status"] == "error"


def test_upstream_400_is_passed_through_and_usage_chunk_only_when_asked(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, _ = _app(tmp_path, cloud, upstreams=[("main", "ok"), ("picky", "400")])
    with client:
        r = _ask(client, "Write a poem", model="picky")
        assert r.status_code == 400 and r.json()["error"]["message"] == "fake 400"
        r = _ask(client, "Write a poem", stream=True, stream_options={"include_usage": True})
        usage = [json.loads(line[6:]) for line in r.text.splitlines() if '"usage"' in line]
        assert usage and usage[0]["usage"]["completion_tokens"] == 3


def test_models_list_shows_routes_and_upstreams(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, _ = _app(tmp_path, cloud)
    with client:
        ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["fake:1", "auto", "local", "main"]
