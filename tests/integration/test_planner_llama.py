"""The planner against llama.cpp itself: the KV cache size it logs, and a real calibration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from slmnode.cli import main
from slmnode.planner.memory import MiB, kv_cache_bytes
from slmnode.planner.model_facts import facts_from_gguf
from slmnode.planner.profiles import get_profile

pytestmark = pytest.mark.integration

_LOAD = """
import sys, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_threads=1,
                      n_batch=512, n_ubatch=512, verbose=True)
"""


def _llama_kv_mib(path: Path, ctx: int) -> float:
    done = subprocess.run([sys.executable, "-c", _LOAD, str(path), str(ctx)], capture_output=True,
                          text=True, timeout=120, check=True)
    sizes = re.findall(r"llama_kv_cache: size =\s+([\d.]+) MiB", done.stderr)
    assert sizes, done.stderr[-2000:]
    assert "using full-size SWA cache" in done.stderr
    return sum(float(s) for s in sizes)


@pytest.mark.parametrize("ctx", [1024, 6144])
def test_kv_cache_matches_llama_cpp(gemma_path: Path, ctx: int) -> None:
    predicted = kv_cache_bytes(facts_from_gguf(gemma_path), ctx) / MiB
    assert _llama_kv_mib(gemma_path, ctx) == pytest.approx(predicted, abs=0.01)


def test_calibrate_caches_a_local_profile(embedded_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A copy of the session home so the cached calibration does not leak into other tests.
    import shutil

    home = Path(str(embedded_home) + "-calib")
    shutil.copytree(embedded_home, home, dirs_exist_ok=True)
    monkeypatch.setenv("SLMNODE_HOME", str(home))
    res = CliRunner().invoke(main, ["plan", "--calibrate", "--model", "gemma3-1b", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert out["device"] == "local" and out["gen_tps"] > 0 and out["prompt_tps"] > 0
    prof = get_profile("local")
    assert prof.gen_bandwidth > 1e8 and prof.prompt_flops > 1e8
    cached = json.loads((home / "calibration.json").read_text())
    assert cached["measurement"]["gen_tps"] > 0
