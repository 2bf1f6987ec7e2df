"""What the router adds to a request: deciding (classify + privacy scan), the ledger write, and the
whole HTTP round trip with and without the router (fake engine, so only our code is timed).

    .venv/bin/python benchmarks/router_overhead.py [--requests 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

from slmnode.config import Settings
from slmnode.router.classify import classify
from slmnode.router.config import RouterConfig, Upstream
from slmnode.router.ledger import Ledger, LedgerRow
from slmnode.router.privacy import scan_messages
from slmnode.router.route import Router
from slmnode.server.app import create_app
from slmnode.server.models import ModelManager, ServedModel
from slmnode.server.service import Node
from tests.unit.test_app_fake_engine import FakeEngine
from tests.unit.test_chat_format import GEMMA

CORPUS = Path(__file__).resolve().parents[1] / "tests/data/privacy/corpus.jsonl"


def _ms(samples: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(samples) * 1e3, 4),
            "p95_ms": round(sorted(samples)[int(len(samples) * 0.95) - 1] * 1e3, 4)}


def decide_cost(texts: list[str]) -> dict[str, dict[str, float]]:
    cls, pii = [], []
    for t in texts:
        msgs = [{"role": "system", "content": "You are a helpful agent."}, {"role": "user", "content": t}]
        t0 = time.perf_counter()
        classify(msgs)
        t1 = time.perf_counter()
        scan_messages(msgs)
        t2 = time.perf_counter()
        cls.append(t1 - t0)
        pii.append(t2 - t1)
    return {"classify": _ms(cls), "privacy_scan": _ms(pii)}


def ledger_cost(n: int, where: Path) -> dict[str, float]:
    ledger = Ledger(where / "ledger.db")
    samples = []
    for i in range(n):
        row = LedgerRow(route="local", reason="task classification (rule: text 'Classify')", task="classification",
                        model="m", status="ok", stream=False, tokens_in=i, tokens_out=3, latency_s=0.1,
                        cost_usd=1e-7, reference_usd=2e-6, api_key="bench")
        t0 = time.perf_counter()
        ledger.record(row)
        samples.append(time.perf_counter() - t0)
    ledger.close()
    return _ms(samples)


def http_cost(n: int, where: Path, routed: bool) -> dict[str, float]:
    eng = FakeEngine("ok")
    eng.release.set()
    node = Node(models=ModelManager(ServedModel("fake:1", "/x.gguf", GEMMA), lambda m: eng),  # type: ignore[arg-type,return-value]
                settings=Settings(ctx=512))
    if routed:
        r = Router(RouterConfig(upstreams=[Upstream(name="c", base_url="http://127.0.0.1:9/v1", model="m")]),
                   Ledger(where / f"ledger-{routed}.db"))
        node.router = r
        node.services.append(r)
    samples = []
    with TestClient(create_app(node)) as client:
        body = {"model": "auto" if routed else None, "max_tokens": 2,
                "messages": [{"role": "user", "content": "Classify the sentiment: 'the battery is great'"}]}
        for _ in range(10):
            client.post("/v1/chat/completions", json=body)
        for _ in range(n):
            t0 = time.perf_counter()
            resp = client.post("/v1/chat/completions", json=body)
            samples.append(time.perf_counter() - t0)
            assert resp.status_code == 200
    return _ms(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    texts = [json.loads(line)["text"] for line in CORPUS.read_text().splitlines() if line]
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        out = {"decide": decide_cost(texts), "ledger_record": ledger_cost(args.requests, where),
               "http_without_router": http_cost(args.requests, where, False),
               "http_with_router": http_cost(args.requests, where, True)}
    out["router_adds_ms"] = round(out["http_with_router"]["median_ms"] - out["http_without_router"]["median_ms"], 3)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"classify        median {out['decide']['classify']['median_ms']:.3f} ms  p95 {out['decide']['classify']['p95_ms']:.3f} ms"
          f"   ({len(texts)} corpus snippets)")
    print(f"privacy scan    median {out['decide']['privacy_scan']['median_ms']:.3f} ms  p95 {out['decide']['privacy_scan']['p95_ms']:.3f} ms")
    print(f"ledger record   median {out['ledger_record']['median_ms']:.3f} ms  p95 {out['ledger_record']['p95_ms']:.3f} ms"
          f"   (WAL, synchronous=FULL, {tmp})")
    print(f"HTTP round trip (fake engine) without router {out['http_without_router']['median_ms']:.3f} ms, "
          f"with router {out['http_with_router']['median_ms']:.3f} ms: +{out['router_adds_ms']:.3f} ms per request")


if __name__ == "__main__":
    main()
