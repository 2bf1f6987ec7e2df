"""GGUF metadata and the model store, on small GGUF files written with the gguf package."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import gguf
import numpy as np
import pytest
from click.testing import CliRunner

from slmnode.catalog.gguf_meta import read_metadata
from slmnode.catalog.model_info import model_info
from slmnode.catalog.store import ModelStore
from slmnode.cli import main
from slmnode.doctor.checks import DoctorContext, check_model_store
from slmnode.errors import ChecksumMismatch, ModelFormatError, ModelNotFound, StoreError
from slmnode.hardware.probe import probe
from slmnode.server.models import ModelManager, ServedModel

BOARDS = Path(__file__).parents[1] / "data" / "boards"


def tiny_gguf(path: Path, vocab: int = 5000, template: str | None = None) -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("Tiny Test")
    w.add_context_length(256)
    w.add_block_count(2)
    w.add_embedding_length(8)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"tok{i}" for i in range(vocab)])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    if template:
        w.add_chat_template(template)
    w.add_tensor("token_embd.weight", np.ones((vocab // 100, 8), dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight", np.ones((8, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_metadata_of_a_tiny_model(tmp_path: Path) -> None:
    info = model_info(tiny_gguf(tmp_path / "t.gguf", template="{{ messages }}"))
    assert (info.architecture, info.block_count, info.head_count, info.head_count_kv) == ("llama", 2, 2, 1)
    assert info.context_length == 256 and info.vocab_size == 5000
    assert info.parameter_count == 50 * 8 + 64
    assert info.bos_token == "tok1" and info.eos_token == "tok2"
    assert info.has_chat_template and info.quant_type == "F32"
    assert info.key_length == 4  # embedding / heads when the key isn't stored


def test_not_a_gguf_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(ModelFormatError, match="not a GGUF"):
        read_metadata(bad)
    (tmp_path / "trunc.gguf").write_bytes(tiny_gguf(tmp_path / "x.gguf").read_bytes()[:200])
    with pytest.raises(ModelFormatError):
        read_metadata(tmp_path / "trunc.gguf")


def test_store_import_list_get_rm(tmp_path: Path) -> None:
    src = tiny_gguf(tmp_path / "tiny.gguf")
    store = ModelStore(tmp_path / "store")
    m = store.add_file(src, "tiny:test", source="file:test")
    assert m.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert store.path_of(m).read_bytes() == src.read_bytes() and src.exists()
    assert [x.name for x in store.list()] == ["tiny:test"]
    assert store.get("tiny:test").info["architecture"] == "llama"
    store.add_file(src, "tiny", source="file:test")
    assert store.get("tiny:latest").name == "tiny"
    store.remove("tiny:test")
    assert store.path_of(m).exists()  # still used by "tiny"
    store.remove("tiny")
    assert not store.path_of(m).exists()
    with pytest.raises(ModelNotFound, match="slmnode models import"):
        store.get("tiny")


def test_checksum_mismatch_registers_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    with pytest.raises(ChecksumMismatch):
        store.add_file(tiny_gguf(tmp_path / "t.gguf"), "t", source="x", expected_sha256="0" * 64)
    assert store.list() == []
    assert list(store.blobs.iterdir()) == []  # no partial file left behind


def _store_with_a_corrupt_manifest(tmp_path: Path) -> tuple[ModelStore, Path]:
    store = ModelStore(tmp_path / "store")
    store.add_file(tiny_gguf(tmp_path / "tiny.gguf"), "good", source="file:test")
    bad = store.manifests / "bad.json"
    bad.write_text('{"name": "bad", "file": ', encoding="utf-8")  # cut short (disk full, power cut)
    return store, bad


def test_a_corrupt_manifest_is_skipped_logged_once_and_listed_as_broken(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    store, bad = _store_with_a_corrupt_manifest(tmp_path)
    (store.manifests / "wrong.json").write_text('{"name": 3}', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="slmnode.catalog.store"):
        assert [m.name for m in store.list()] == ["good"]  # before: StoreError, so no model at all
        store.list()
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and str(bad) in warned[0] and "not valid JSON" in warned[0]
    assert [(b.path.name, "not valid JSON" in b.reason) for b in store.broken()] == [("bad.json", True),
                                                                                      ("wrong.json", False)]
    assert store.get("good").name == "good"
    with pytest.raises(ModelNotFound, match="available: good"):
        store.get("other")
    with pytest.raises(StoreError, match=f"corrupt manifest {bad}"):
        store.get("bad")  # asked for by name: the error names the file and the fix


def test_a_manifest_whose_model_file_is_gone_is_broken_and_not_served(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    src = tiny_gguf(tmp_path / "tiny.gguf")
    store.add_file(src, "good", source="file:test")
    gone = store.add_file(tiny_gguf(tmp_path / "other.gguf", vocab=4000), "gone", source="file:test")
    store.path_of(gone).unlink()
    (broken,) = store.broken()
    assert broken.path.name == "gone.json" and "is missing" in broken.reason
    manager = ModelManager(ServedModel("default", str(src), model_info(src)), lambda m: None,  # type: ignore[arg-type,return-value]
                           store=store)
    assert [m.name for m in manager.available()] == ["default", "good"]  # before: ModelFormatError (a 400)


def test_doctor_reports_a_broken_manifest_with_the_fix(tmp_path: Path) -> None:
    store, bad = _store_with_a_corrupt_manifest(tmp_path)
    facts = probe(BOARDS / "pi5-8gb", model_dir="/")
    finding = check_model_store(facts, DoctorContext(model="m", need_bytes=1, store=store))
    assert finding.status == "warn" and "not valid JSON" in finding.reason
    assert finding.fix is not None and finding.fix.startswith(f"rm '{bad}'") and "slmnode models import" in finding.fix
    bad.unlink()
    assert check_model_store(facts, DoctorContext(model="m", need_bytes=1, store=store)).status == "pass"


def test_doctor_cli_shows_the_broken_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SLMNODE_HOME", str(home))
    (home / "models" / "manifests").mkdir(parents=True)
    (home / "models" / "manifests" / "bad.json").write_text("{", encoding="utf-8")
    res = CliRunner().invoke(main, ["doctor", "--root", str(BOARDS / "pi5-8gb"), "--model", "qwen2.5-0.5b-instruct",
                                    "--json"])
    found = {f["check"]: f for f in json.loads(res.output)["findings"]}["model-store"]
    assert found["status"] == "warn" and "bad.json" in found["fix"]
