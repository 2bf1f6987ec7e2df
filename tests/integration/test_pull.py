"""``slmnode pull`` against a fake hub on loopback that serves the real embedded GGUF.

The CLI runs as a real subprocess with ``HF_ENDPOINT`` pointed at :mod:`tests.fakehub`; the fake hub
records every request, so the tests can assert that refusals happen before any GET of the file body and
that a resumed download asks for ``Range: bytes=<partial size>-``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from slmnode.catalog.aliases import resolve_target
from slmnode.catalog.pull import pull
from slmnode.catalog.store import ModelStore, sha256_file
from slmnode.cli import main
from tests.fakehub import COMMIT, FakeHub

pytestmark = pytest.mark.integration

REPO = "unsloth/gemma-3-270m-it-GGUF"  # what the alias gemma3:270m names
Q4 = "gemma-3-270m-it-Q4_K_M.gguf"
Q8 = "gemma-3-270m-it-Q8_0.gguf"
CUT = 25 * (1 << 20) + 1234  # bytes the fake hub sends before dropping the connection


@pytest.fixture(scope="module")
def gguf_sha(gemma_path: Path) -> str:
    return sha256_file(gemma_path)


@pytest.fixture
def hub(gemma_path: Path, gguf_sha: str) -> Iterator[FakeHub]:
    with FakeHub() as h:
        h.add(REPO, Q4, gemma_path, sha256=gguf_sha)
        h.add(REPO, Q8, gemma_path, sha256=gguf_sha)
        yield h


@pytest.fixture
def store(_hermetic_home: Path) -> ModelStore:
    return ModelStore(_hermetic_home / "models")


def run_pull(hub: FakeHub, *args: str) -> tuple[int, Any, str]:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": os.environ["SLMNODE_HOME"] + "-hf",
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_TOKEN", None)
    done = subprocess.run([sys.executable, "-m", "slmnode", "pull", *args, "--json"], check=False, capture_output=True,
                          text=True, env=env, timeout=240)
    try:
        data = json.loads(done.stdout) if done.stdout.strip() else None
    except json.JSONDecodeError:
        data = None
    return done.returncode, data, done.stderr


def cli_pull(hub: FakeHub, *args: str) -> tuple[int, Any, str]:
    """The same command in this process (click's runner): for checks that need no second process."""
    res = CliRunner().invoke(main, ["pull", *args, "--json"], env={"HF_ENDPOINT": hub.url, "HF_TOKEN": None})
    data = json.loads(res.stdout) if res.stdout.strip() else None
    return res.exit_code, data, res.stderr


def names_in(store: ModelStore) -> set[str]:
    return {m.name for m in store.list()}


def leftovers(store: ModelStore) -> list[str]:
    """Anything in blobs/ or downloads/ that is not a registered blob."""
    registered = {store.path_of(m).name for m in store.list()}
    out = []
    for d in (store.blobs, store.root / "downloads"):
        out += [p.name for p in d.glob("*")] if d.is_dir() else []
    return sorted(n for n in out if n not in registered)


def test_pull_alias_verifies_registers_and_is_idempotent(hub: FakeHub, store: ModelStore, gguf_sha: str,
                                                        gemma_path: Path) -> None:
    code, data, err = run_pull(hub, "gemma3:270m")
    assert code == 0, err
    assert data["names"] == ["gemma3:270m-q4_k_m", "gemma3:270m"]
    assert data["sha256"] == gguf_sha and data["sha256_verified"] is True
    assert data["size_bytes"] == gemma_path.stat().st_size == data["downloaded_bytes"]
    assert data["source"] == f"hf://{REPO}/{Q4}@{COMMIT}"
    assert {c["name"]: c["ok"] for c in data["checks"]} == {"disk": True, "ram": True}
    # Both names resolve to one verified blob; nothing else was left behind.
    m1, m2 = store.get("gemma3:270m-q4_k_m"), store.get("gemma3:270m")
    assert m1.file == m2.file == f"blobs/sha256-{gguf_sha}.gguf"
    assert sha256_file(store.path_of(m1)) == gguf_sha
    assert leftovers(store) == []
    # One HEAD on the hub origin, then one plain GET of the bytes on the CDN origin.
    assert [r.method for r in hub.state.resolve_heads()] == ["HEAD"]
    gets = hub.state.body_gets(Q4)
    assert len(gets) == 1 and "Range" not in gets[0].headers
    # The manifest records where it came from (`models list` shows it in its SOURCE column).
    assert m1.source == m2.source == data["source"]
    # Pulling again downloads nothing.
    code, again, err = cli_pull(hub, "gemma3:270m-q4_k_m")
    assert code == 0, err
    assert again["already_present"] is True and again["downloaded_bytes"] == 0
    assert len(hub.state.body_gets()) == 1


def test_interrupted_pull_resumes_with_a_range_request(hub: FakeHub, store: ModelStore, gguf_sha: str,
                                                      gemma_path: Path) -> None:
    # First run: the connection drops after CUT bytes and the hub then answers 503 -> the pull fails.
    hub.state.cut_after, hub.state.fail_next_gets = CUT, 1
    code, _, err = run_pull(hub, "gemma3:270m")
    assert code == 1
    assert "run the same command again to resume" in err
    partial = store.root / "downloads" / f"sha256-{gguf_sha}.partial"
    have = partial.stat().st_size
    assert 0 < have <= CUT
    assert names_in(store) == set()  # nothing registered from a partial file
    # Second run: continues from the partial file.
    code, data, err = run_pull(hub, "gemma3:270m")
    assert code == 0, err
    last = hub.state.body_gets(Q4)[-1]
    assert last.headers.get("Range") == f"bytes={have}-"
    assert data["resumed_from"] == have
    assert data["downloaded_bytes"] == gemma_path.stat().st_size - have
    assert data["sha256"] == gguf_sha and sha256_file(store.path_of(store.get("gemma3:270m"))) == gguf_sha
    assert leftovers(store) == []


def test_dropped_connection_is_resumed_within_the_same_pull(hub: FakeHub, store: ModelStore, gguf_sha: str) -> None:
    hub.state.cut_after = CUT
    result = pull(resolve_target("gemma3:270m-q4_k_m"), store=store, endpoint=hub.url)
    gets = hub.state.body_gets(Q4)
    assert len(gets) == 2 and "Range" not in gets[0].headers
    start = int(gets[1].headers["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= CUT
    assert result.sha256 == gguf_sha and result.names == ["gemma3:270m-q4_k_m"]


def test_checksum_mismatch_is_rejected_and_nothing_is_kept(hub: FakeHub, store: ModelStore) -> None:
    hub.state.repos[REPO][Q4].advertise_sha256 = "0" * 64
    code, _, err = run_pull(hub, "gemma3:270m")
    assert code == 1
    assert "sha256" in err and "nothing was registered" in err
    assert len(hub.state.body_gets(Q4)) == 1  # the file was fetched, then refused
    assert names_in(store) == set()
    assert leftovers(store) == []  # no partial file in blobs/ or downloads/


def test_disk_refusal_happens_before_any_get(hub: FakeHub, store: ModelStore) -> None:
    total = shutil.disk_usage(Path(os.environ["SLMNODE_HOME"]).parent).total
    code, data, _ = cli_pull(hub, "gemma3:270m", "--keep-free", str(total))
    assert code == 3
    disk = next(c for c in data["checks"] if c["name"] == "disk")
    assert disk["ok"] is False
    assert disk["numbers"]["needed_bytes"] == disk["numbers"]["download_bytes"] + total
    assert disk["numbers"]["free_bytes"] < disk["numbers"]["needed_bytes"]
    assert hub.state.resolve_heads() and hub.state.body_gets() == []
    assert names_in(store) == set()


def test_ram_refusal_happens_before_any_get_and_force_overrides(hub: FakeHub, store: ModelStore) -> None:
    # A Pi 4 with 4 GB cannot hold this model's KV cache and attention buffers at 128k tokens.
    code, data, _ = cli_pull(hub, "gemma3:270m", "--device", "pi4-4gb", "--ctx", "131072")
    assert code == 3
    ram = next(c for c in data["checks"] if c["name"] == "ram")
    assert ram["ok"] is False and ram["numbers"]["ctx"] == 131072
    assert ram["numbers"]["required_bytes"] > ram["numbers"]["available_bytes"] == 3 << 30
    assert ram["numbers"]["breakdown"]["kv_cache"] > 2 << 30
    assert "RAM" in data["message"] and "--force" in data["message"]
    assert hub.state.body_gets() == []
    # The same pull at a context that fits goes through; --force downloads past the refusal.
    code, data, err = cli_pull(hub, "gemma3:270m", "--device", "pi4-4gb", "--ctx", "131072", "--force")
    assert code == 0, err
    assert data["forced"] is True and len(hub.state.body_gets()) == 1


def test_default_quant_is_the_planners_pick_for_the_device(hub: FakeHub, store: ModelStore) -> None:
    code, data, err = cli_pull(hub, "gemma3:270m", "--device", "pi4-8gb")
    assert code == 0, err
    assert data["quant"] == "Q8_0" and data["quant_source"].startswith("planner for pi4-8gb")
    assert data["names"] == ["gemma3:270m-q8_0", "gemma3:270m"]
    assert len(hub.state.body_gets(Q8)) == 1 and hub.state.body_gets(Q4) == []


def test_missing_quant_lists_the_repos_files(hub: FakeHub, store: ModelStore) -> None:
    code, _, err = cli_pull(hub, "gemma3:270m", "--quant", "Q2_K")
    assert code == 1
    assert "gemma-3-270m-it-Q2_K.gguf" in err and Q4 in err and Q8 in err
    assert hub.state.body_gets() == []


def test_hf_url_forms_and_plain_https_url(hub: FakeHub, store: ModelStore, gguf_sha: str) -> None:
    code, data, err = cli_pull(hub, f"hf://{REPO}/{Q8}")
    assert code == 0, err
    assert data["names"] == ["gemma-3-270m-it-Q8_0"] and data["sha256_verified"] is True
    # A plain web URL: verified only when --sha256 is given (here: the right one, then a wrong one).
    url = f"{hub.cdn_url}/files/{Q4}"
    code, data, err = cli_pull(hub, url, "--sha256", gguf_sha, "--name", "plain")
    assert code == 0, err
    assert data["names"] == ["plain"] and data["sha256_verified"] is True and data["already_present"] is True
    code, _, err = cli_pull(hub, url, "--sha256", "f" * 64, "--name", "plain2")
    assert code == 1 and "sha256" in err
    assert "plain2" not in names_in(store) and leftovers(store) == []
