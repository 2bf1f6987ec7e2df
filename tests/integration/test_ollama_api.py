"""The real ``ollama`` client against a real node."""

from __future__ import annotations

import json

import jsonschema
import ollama
import pytest

from slmnode.catalog.embedded import GEMMA3
from tests.conftest import RunningNode

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(node: RunningNode) -> ollama.Client:
    return ollama.Client(host=node.base_url, timeout=120)


def test_chat_non_stream_has_ollama_fields(client: ollama.Client, node: RunningNode) -> None:
    r = client.chat(model=node.model, stream=False, options={"num_predict": 12, "temperature": 0},
                    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}])
    assert r.message.role == "assistant" and r.message.content.strip()
    assert r.done and r.done_reason in ("stop", "length")
    assert 0 < r.eval_count <= 12 and r.prompt_eval_count > 5
    assert r.total_duration >= r.eval_duration > 0  # nanoseconds


def test_chat_stream(client: ollama.Client, node: RunningNode) -> None:
    parts = list(client.chat(model=node.model, stream=True, options={"num_predict": 16, "temperature": 0},
                             messages=[{"role": "user", "content": "Name a fruit."}]))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.message.content for p in parts).strip()
    assert len(parts) >= 3


def test_generate(client: ollama.Client, node: RunningNode) -> None:
    r = client.generate(model=node.model, prompt="The sun rises in the", options={"num_predict": 6, "temperature": 0}, raw=True)
    assert r.response.strip() and r.done and r.eval_count <= 6


def test_format_schema_is_enforced(client: ollama.Client, node: RunningNode) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                               "population": {"type": "integer", "minimum": 0, "maximum": 50000000}},
              "required": ["city", "population"]}
    r = client.chat(model=node.model, format=schema, options={"num_predict": 80, "temperature": 0.5, "seed": 4},
                    messages=[{"role": "user", "content": "A city as JSON."}])
    jsonschema.validate(json.loads(r.message.content), schema)


def test_list_show_ps_version(client: ollama.Client, node: RunningNode) -> None:
    listed = {m.model: m for m in client.list().models}
    assert set(listed) == {node.model, GEMMA3.name}  # both embedded models, before Gemma is ever used
    m = listed[node.model]
    assert m.size == 98_362_432 and m.details.format == "gguf"
    assert m.details.quantization_level == "Q4_1" and len(m.digest) == 64
    shown = client.show(node.model)
    assert shown.details.family == "llama"
    assert shown.modelinfo["llama.block_count"] == 30
    gemma = client.show(GEMMA3.name)
    assert gemma.details.family == "gemma3" and gemma.modelinfo["gemma3.block_count"] == 18
    assert listed[GEMMA3.name].details.quantization_level == "Q4_K_M"
    (loaded,) = client.ps().models
    assert loaded.model == node.model


def test_unknown_model_raises_response_error(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as exc:
        client.chat(model="llama9:400b", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 404
    assert "llama9:400b" in exc.value.error
