"""A fuzz pass over the node's own OpenAPI schema with schemathesis: no 5xx, no crash.

Bounded: a few examples per operation against a node with a small context, so a generated request
can never generate for long. (schemathesis' pytest plugin does not run under pytest 9, so the
operations are driven through its Python API and Hypothesis directly.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import start_node

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fuzz_url(embedded_home: Path) -> Iterator[str]:
    # a small context bounds every generation; no request time limit, so a slow box can't turn into 504s
    p, url = start_node(embedded_home, "--ctx", "128", "--request-timeout", "0")
    yield url
    assert p.proc.poll() is None, "the node died during the fuzz pass"
    p.stop()


def test_no_server_errors_anywhere(fuzz_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_url}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 12
    seen: list[tuple[str, int]] = []
    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=6, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=fuzz_url, timeout=300)
            seen.append((op.label, response.status_code))  # noqa: B023 (called at once, in this iteration)
            assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"
            if response.status_code >= 400 and case.path.startswith("/v1/"):
                assert isinstance(response.json()["error"]["message"], str)

        check()
    assert any(code >= 400 for _, code in seen) and any(code == 200 for _, code in seen)
    assert httpx.get(f"{fuzz_url}/health").json()["status"] == "ok"
