"""Model capabilities (Ollama's /api/show ``capabilities``) from real chat templates and GGUF metadata."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

from slmnode.catalog.model_info import ModelInfo
from slmnode.chat.capabilities import capabilities
from slmnode.config import Settings
from slmnode.server.app import create_app
from slmnode.server.models import ModelManager, ServedModel
from slmnode.server.service import Node
from tests.conftest import DATA
from tests.unit.test_app_fake_engine import FakeEngine
from tests.unit.test_chat_format import GEMMA

TEMPLATES = DATA / "chat_templates"


def with_template(name: str, architecture: str = "llama") -> ModelInfo:
    return dataclasses.replace(GEMMA, architecture=architecture, has_chat_template=True,
                               chat_template=(TEMPLATES / name).read_text())


CT, CTT = ("completion", "tools"), ("completion", "tools", "thinking")

CASES = [  # template file, capabilities, tool format
    ("Qwen3.5-4B.jinja", CTT, "qwen-xml"),
    ("Qwen-Qwen3-0.6B.jinja", CTT, "hermes"),
    ("Qwen-Qwen2.5-7B-Instruct.jinja", CT, "hermes"),
    ("Qwen3-Coder.jinja", CT, "qwen-xml"),
    ("HuggingFaceTB-SmolLM3-3B.jinja", CTT, "hermes"),
    ("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", CT, "hermes"),
    ("meta-llama-Llama-3.1-8B-Instruct.jinja", CT, "llama3"),
    ("meta-llama-Llama-3.2-3B-Instruct.jinja", CT, "llama3"),
    ("google-gemma-2-2b-it.jinja", CT, "gemma"),
    ("google-gemma-3-4b-it.jinja", CT, "gemma"),
    ("microsoft-Phi-4-mini-instruct.jinja", CT, "phi4"),
    ("microsoft-Phi-3.5-mini-instruct.jinja", CT, "generic"),  # no tool syntax: tools through the generic format
    ("mistralai-Mistral-Nemo-Instruct-2407.jinja", CT, "mistral"),
    ("unsloth-mistral-Devstral-Small-2507.jinja", CT, "mistral-args"),
    ("LFM2-8B-A1B.jinja", CT, "lfm2"),
    ("LFM2.5-Instruct.jinja", CT, "lfm2"),
]


@pytest.mark.parametrize(("template", "names", "tool_format"), CASES)
def test_capabilities_of_real_templates(template: str, names: tuple[str, ...], tool_format: str) -> None:
    caps = capabilities(with_template(template))
    assert (caps.names, caps.tool_format) == (names, tool_format)


def test_every_template_in_the_data_is_in_the_table() -> None:
    assert {p.name for p in TEMPLATES.glob("*.jinja")} - {c[0] for c in CASES} <= {"LFM2.5-8B-A1B.jinja"}


def test_no_template_falls_back_on_the_architecture() -> None:
    assert capabilities(GEMMA).names == CT and capabilities(GEMMA).tool_format == "gemma"
    assert capabilities(dataclasses.replace(GEMMA, architecture="qwen3")).tool_format == "hermes"
    assert capabilities(dataclasses.replace(GEMMA, architecture="mystery")).tool_format == "generic"


@pytest.mark.parametrize(("arch", "pooling", "embedding"), [
    ("qwen3", 3, True),      # Qwen3-Embedding: a decoder with last-token pooling
    ("bert", None, True),    # encoder-only: an embedding model even without the key
    ("nomic-bert", 1, True),
    ("llama", 0, False),     # pooling "none": a generative model
    ("llama", None, False),
])
def test_embedding_models_by_pooling_type_or_architecture(arch: str, pooling: int | None, embedding: bool) -> None:
    caps = capabilities(dataclasses.replace(GEMMA, architecture=arch, pooling_type=pooling))
    assert caps.names == (("embedding",) if embedding else CT)
    assert ("completion" in caps) is not embedding


def test_vision_only_when_the_metadata_says_so() -> None:
    assert "vision" not in capabilities(GEMMA)
    caps = capabilities(dataclasses.replace(with_template("google-gemma-3-4b-it.jinja", "gemma3"), vision=True))
    assert caps.names == ("completion", "tools", "vision")


def _served(model: ServedModel) -> tuple[dict, dict]:
    """(/api/show, /v1/models meta) of a node whose default model is ``model`` (fake engine)."""
    eng = FakeEngine("hi")
    eng.release.set()
    node = Node(models=ModelManager(model, lambda m: eng), settings=Settings(ctx=512))  # type: ignore[arg-type,return-value]
    with TestClient(create_app(node)) as client:
        show = client.post("/api/show", json={"model": model.name})
        listed = client.get("/v1/models")
    assert show.status_code == listed.status_code == 200
    return show.json(), {m["id"]: m["meta"] for m in listed.json()["data"]}[model.name]


def test_show_and_models_list_report_capabilities() -> None:
    show, meta = _served(ServedModel("qwen3:0.6b", "/q.gguf", with_template("Qwen-Qwen3-0.6B.jinja", "qwen3")))
    assert show["capabilities"] == meta["capabilities"] == ["completion", "tools", "thinking"]
    assert meta["tool_format"] == "hermes"
    embed = dataclasses.replace(GEMMA, architecture="nomic-bert", pooling_type=1)
    show, meta = _served(ServedModel("nomic-embed", "/e.gguf", embed))
    assert show["capabilities"] == meta["capabilities"] == ["embedding"]
    assert meta["tool_format"] is None
