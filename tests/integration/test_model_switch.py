"""Several models in one node: load on demand, one resident at a time, keep_alive 0 unloads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from slmnode.catalog.store import EMBEDDED_NAME, ModelStore
from tests.conftest import start_node

pytestmark = pytest.mark.integration
OTHER = "other:q4"


@pytest.fixture(scope="module")
def two_model_node(embedded_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("two-models")
    store = ModelStore(home / "models")
    store.add_file(embedded_path, EMBEDDED_NAME, source="test")
    store.add_file(embedded_path, OTHER, source="test")  # same blob, its own name and engine
    p, url = start_node(home, "--ctx", "1024")
    yield url
    p.stop()


def test_request_for_another_model_loads_it_and_unloads_the_first(two_model_node: str) -> None:
    url = two_model_node
    oa = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    ol = ollama.Client(host=url)
    assert sorted(m.id for m in oa.models.list()) == sorted([EMBEDDED_NAME, OTHER])
    assert sorted(m.model for m in ol.list().models) == sorted([EMBEDDED_NAME, OTHER])
    assert [m.model for m in ol.ps().models] == [EMBEDDED_NAME]

    r = oa.chat.completions.create(model=OTHER, max_tokens=3, messages=[{"role": "user", "content": "hi"}])
    assert r.model == OTHER and r.choices[0].message.content is not None
    assert [m.model for m in ol.ps().models] == [OTHER]  # one resident model by default

    g = ol.generate(model=EMBEDDED_NAME, prompt="Hello", options={"num_predict": 3})
    assert g.load_duration > 0  # this request waited for the switch back
    assert [m.model for m in ol.ps().models] == [EMBEDDED_NAME]

    ol.generate(model=EMBEDDED_NAME, prompt="", keep_alive=0)  # Ollama's "unload now"
    assert ol.ps().models == []
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    r = oa.chat.completions.create(model=EMBEDDED_NAME, max_tokens=2, messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].finish_reason in ("stop", "length")
