"""Ollama's model management on a real node, through the real ``ollama`` client, offline.

The node pulls from :mod:`tests.fakehub` (``HF_ENDPOINT`` on loopback, serving the real embedded Gemma GGUF),
into an empty store of its own; it serves SmolLM2 from a file path, so deleting and copying touch only what
was pulled. A refusal (disk and RAM) is streamed as an error line before any byte of the file is fetched.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from slmnode.catalog.store import ModelStore, sha256_file
from tests.conftest import NodeProcess, start_node
from tests.fakehub import FakeHub

pytestmark = pytest.mark.integration

REPO = "unsloth/gemma-3-270m-it-GGUF"  # what the alias gemma3:270m names
Q4 = "gemma-3-270m-it-Q4_K_M.gguf"
HUGE_REPO = "someone/huge-GGUF"
HUGE = "huge-Q4_K_M.gguf"


@pytest.fixture(scope="module")
def hub(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    huge = tmp_path_factory.mktemp("huge") / HUGE
    with huge.open("wb") as fh:  # sparse: bigger than the disk (and than RAM), costs no space
        fh.truncate(shutil.disk_usage(huge.parent).total + (1 << 30))
    with FakeHub() as h:
        h.add(REPO, Q4, gemma_path, sha256=sha256_file(gemma_path))
        h.add(HUGE_REPO, HUGE, huge, sha256="0" * 64)
        yield h


@pytest.fixture(scope="module")
def served(hub: FakeHub, smollm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("pull-home")
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(home / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    p: NodeProcess
    p, url = start_node(home, "--model", str(smollm_path), "--ctx", "1024", env=env)
    try:
        yield url, home
    finally:
        p.stop()


def names(client: ollama.Client) -> set[str]:
    return {m.model for m in client.list().models if m.model}


def test_liveness_root(served: tuple[str, Path]) -> None:
    url, _ = served
    r = httpx.get(url + "/")
    assert r.status_code == 200 and r.text == "Ollama is running" and r.headers["content-type"].startswith("text/plain")
    assert httpx.head(url + "/").status_code == 200


def test_pull_streams_progress_then_copy_delete_and_embed(served: tuple[str, Path], hub: FakeHub,
                                                          gemma_path: Path) -> None:
    url, home = served
    client = ollama.Client(host=url)
    sha = sha256_file(gemma_path)
    size = gemma_path.stat().st_size
    progress = list(client.pull("gemma3:270m", stream=True))
    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    pulling = [p for p in progress if p.status == f"pulling {sha[:12]}"]
    assert pulling and all(p.digest == f"sha256:{sha}" and p.total == size for p in pulling)
    done = [p.completed or 0 for p in pulling]
    assert done == sorted(done) and done[-1] == size
    assert statuses == ["pulling manifest", *[p.status for p in pulling], *statuses[-3:]]
    assert len(hub.state.body_gets(Q4)) == 1
    store = ModelStore(home / "models")
    assert {"gemma3:270m", "gemma3:270m-q4_k_m"} <= {m.name for m in store.list()}
    assert {"gemma3:270m", "gemma3:270m-q4_k_m"} <= names(client)

    # Again: nothing to download; stream=false answers once.
    again = client.pull("gemma3:270m", stream=False)
    assert again.status == "success" and len(hub.state.body_gets(Q4)) == 1

    # The pulled model serves embeddings at once.
    emb = client.embed(model="gemma3:270m", input=["The cat sat on the mat.", "Bank revenue rose."])
    assert len(emb.embeddings) == 2 and len(emb.embeddings[0]) == 640

    client.copy("gemma3:270m", "mine:v1")
    assert "mine:v1" in names(client)
    assert store.get("mine:v1").sha256 == sha
    client.delete("mine:v1")
    assert "mine:v1" not in names(client) and "gemma3:270m" in names(client)
    assert store.path_of(store.get("gemma3:270m")).is_file()  # the blob stays while another name uses it
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("mine:v1")
    assert err.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as err:
        client.copy("no-such-model", "x")
    assert err.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as err:
        client.copy("gemma3:270m", "bad name with spaces")
    assert err.value.status_code == 400
    assert client.embed(model="gemma3:270m", input="still serving").embeddings


def test_refusal_is_streamed_as_an_error_line_before_any_download(served: tuple[str, Path], hub: FakeHub) -> None:
    url, home = served
    before = {m.name for m in ModelStore(home / "models").list()}
    with httpx.stream("POST", f"{url}/api/pull", json={"model": f"hf://{HUGE_REPO}/{HUGE}"}, timeout=120) as r:
        assert r.status_code == 200
        lines = [json.loads(line) for line in r.iter_lines() if line.strip()]
    assert lines[0] == {"status": "pulling manifest"}
    assert "refusing to download" in lines[-1]["error"] and "disk:" in lines[-1]["error"]
    assert "RAM:" in lines[-1]["error"]
    assert hub.state.body_gets(HUGE) == []
    with pytest.raises(ollama.ResponseError) as err:  # the client turns the line into an exception
        list(ollama.Client(host=url).pull(f"hf://{HUGE_REPO}/{HUGE}", stream=True))
    assert "refusing to download" in err.value.error
    r2 = httpx.post(f"{url}/api/pull", json={"model": f"hf://{HUGE_REPO}/{HUGE}", "stream": False}, timeout=120)
    assert r2.status_code == 507 and "refusing to download" in r2.json()["error"]
    assert {m.name for m in ModelStore(home / "models").list()} == before
    assert list((home / "models").glob("downloads/*.partial")) == []  # refused before the download began


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", "/api/pull", {}, 400),
    ("POST", "/api/pull", {"model": "no-such-family:1b"}, 404),
    ("POST", "/api/pull", {"model": "hf://just-one-part"}, 400),
    ("DELETE", "/api/delete", {}, 400),
    ("DELETE", "/api/delete", {"model": "nothing-here"}, 404),
    ("POST", "/api/copy", {"source": "x"}, 400),
])
def test_bad_management_requests(served: tuple[str, Path], method: str, path: str, body: dict[str, str],
                                 status: int) -> None:
    url, _ = served
    r = httpx.request(method, url + path, json=body, timeout=60)
    assert r.status_code == status, r.text
    assert isinstance(r.json()["error"], str)
    assert httpx.get(url + "/api/tags").status_code == 200


def test_the_default_model_is_not_deleted(served: tuple[str, Path], smollm_path: Path) -> None:
    url, home = served
    client = ollama.Client(host=url)
    default = smollm_path.stem  # served from a file: not in the store, so not deletable here
    with pytest.raises(ollama.ResponseError) as err:
        client.delete(default)
    assert err.value.status_code == 404
    assert os.path.exists(smollm_path)
