"""The HTTP process never loads ``llama_cpp`` nor the worker's entry module (docs/architecture.md).

Checked in a fresh interpreter that walks the ``slmnode serve`` path: the whole CLI, the supervised
node, the app, its lifespan loading the real embedded model in the engine worker, one completion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SERVE_PATH = r"""
import json, sys
from fastapi.testclient import TestClient
from slmnode.cli import main  # everything `slmnode serve` imports
from slmnode.cli.common import settings_from
from slmnode.server.app import create_app, worker_settings
from slmnode.supervisor.node import supervised_node

settings = settings_from({"model": sys.argv[1], "ctx": 512})
node = supervised_node(settings)
worker_settings(settings, node.default)
with TestClient(create_app(node)) as client:
    r = client.post("/v1/completions", json={"model": node.default.name, "prompt": "Once upon", "max_tokens": 2})
    assert r.status_code == 200, r.text
    loaded = [s.model.name for s in node.models.loaded()]
print(json.dumps({"loaded": loaded, "modules": sorted(
    m for m in sys.modules if m.split(".")[0] == "llama_cpp" or m == "slmnode.engine.worker")}))
"""


def test_serve_path_loads_a_model_without_llama_cpp_in_the_http_process(gemma_path: Path,
                                                                         _hermetic_home: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SERVE_PATH, str(gemma_path)], capture_output=True, text=True,
                          env={**os.environ, "SLMNODE_HOME": str(_hermetic_home)}, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"] == [gemma_path.stem]  # the real engine ran, in its own process
    assert out["modules"] == []
