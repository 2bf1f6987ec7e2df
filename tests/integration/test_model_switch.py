"""Several models in one node: load on demand, one resident at a time, keep_alive 0 unloads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from slmnode.catalog.embedded import GEMMA3, SMOLLM2
from tests.conftest import start_node

pytestmark = pytest.mark.integration
DEFAULT, OTHER = SMOLLM2.name, GEMMA3.name  # the two embedded models: two architectures, two engines


@pytest.fixture(scope="module")
def two_model_node(embedded_home: Path) -> Iterator[str]:
    p, url = start_node(embedded_home, "--ctx", "1024")
    yield url
    p.stop()


def test_request_for_another_model_loads_it_and_unloads_the_first(two_model_node: str) -> None:
    url = two_model_node
    oa = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    ol = ollama.Client(host=url)
    assert sorted(m.id for m in oa.models.list()) == sorted([DEFAULT, OTHER])
    assert sorted(m.model for m in ol.list().models) == sorted([DEFAULT, OTHER])
    assert [m.model for m in ol.ps().models] == [DEFAULT]

    r = oa.chat.completions.create(model=OTHER, max_tokens=3, messages=[{"role": "user", "content": "hi"}])
    assert r.model == OTHER and r.choices[0].message.content is not None
    assert [m.model for m in ol.ps().models] == [OTHER]  # one resident model by default

    g = ol.generate(model=DEFAULT, prompt="Hello", options={"num_predict": 3})
    assert g.load_duration > 0  # this request waited for the switch back
    assert [m.model for m in ol.ps().models] == [DEFAULT]

    ol.generate(model=DEFAULT, prompt="", keep_alive=0)  # Ollama's "unload now"
    assert ol.ps().models == []
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    r = oa.chat.completions.create(model=DEFAULT, max_tokens=2, messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].finish_reason in ("stop", "length")
