"""``pull`` translates network failures into one line, and lets bugs propagate with their traceback.

Against the local stand-in hub (:mod:`tests.fakehub`): a hub that is down says "cannot reach the hub";
a hub answering with a malformed model-info document makes the code raise KeyError, which must not be
disguised as a network problem.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from slmnode.catalog.aliases import resolve_target
from slmnode.catalog.pull import pull
from slmnode.catalog.store import ModelStore
from slmnode.cli import main
from slmnode.errors import StoreError
from tests import fakehub
from tests.fakehub import FakeHub

pytestmark = pytest.mark.integration

REPO = "unsloth/gemma-3-270m-it-GGUF"
Q4 = "gemma-3-270m-it-Q4_K_M.gguf"


@pytest.fixture
def store(_hermetic_home: Path) -> ModelStore:
    return ModelStore(_hermetic_home / "models")


def test_hub_down_says_cannot_reach(gemma_path: Path, store: ModelStore) -> None:
    with FakeHub() as hub:
        hub.add(REPO, Q4, gemma_path)
        url = hub.url
    # the hub's port is closed now: connection refused
    with pytest.raises(StoreError, match="cannot reach the hub") as info:
        pull(resolve_target(f"hf://{REPO}", "Q4_K_M"), store=store, endpoint=url)
    assert info.value.__cause__ is not None  # translated with `raise ... from exc`
    res = CliRunner().invoke(main, ["pull", f"hf://{REPO}", "--quant", "Q4_K_M", "--json"],
                             env={"HF_ENDPOINT": url, "HF_TOKEN": None})
    assert res.exit_code == 1 and "cannot reach the hub" in res.stderr


def _model_info_without_file_names(self: Any, repo_id: str, rev: str, blobs: bool) -> None:
    body = json.dumps({"id": repo_id, "sha": fakehub.COMMIT, "siblings": [{"size": 1}]}).encode()
    self._send(200, {"Content-Type": "application/json"}, body)


def test_malformed_hub_answer_is_a_bug_not_a_network_error(gemma_path: Path, store: ModelStore,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fakehub._Handler, "_model_info", _model_info_without_file_names)
    with FakeHub() as hub:
        hub.add(REPO, Q4, gemma_path)
        with pytest.raises(KeyError, match="rfilename"):
            pull(resolve_target(f"hf://{REPO}", "Q4_K_M"), store=store, endpoint=hub.url)
        res = CliRunner().invoke(main, ["pull", f"hf://{REPO}", "--quant", "Q4_K_M", "--json"],
                                 env={"HF_ENDPOINT": hub.url, "HF_TOKEN": None})
    assert isinstance(res.exception, KeyError)  # not turned into "cannot reach the hub"
    assert "cannot reach" not in res.stderr
    assert store.list() == []
