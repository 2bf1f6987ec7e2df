"""A new user's first minutes: an empty home, `slmnode serve` with no model named, a first chat.

The embedded default is SmolLM2 135M Instruct (an instruction-tuned model with its ChatML template in the
GGUF), so the first question gets an answer; Gemma 3 270M, the second embedded model, is listed too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from slmnode.catalog.embedded import DEFAULT_EMBEDDED, GEMMA3, SMOLLM2
from tests.conftest import start_node

pytestmark = pytest.mark.integration
QUESTION = "What is the capital of France?"


def test_new_users_first_chat_on_the_default_model_gets_an_answer(tmp_path: Path) -> None:
    home = tmp_path / "new-user"  # nothing placed yet: the node places the embedded models itself
    p, url = start_node(home, "--ctx", "1024")
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
        ids = [m.id for m in client.models.list()]
        assert ids[0] == DEFAULT_EMBEDDED.name == SMOLLM2.name and set(ids) == {SMOLLM2.name, GEMMA3.name}
        r = client.chat.completions.create(model="default", temperature=0, max_tokens=32,
                                           messages=[{"role": "user", "content": QUESTION}])
        assert r.model == SMOLLM2.name
        answer = r.choices[0].message.content or ""
        assert "Paris" in answer, answer  # measured: "The capital of France is Paris."
        assert r.choices[0].finish_reason == "stop"  # it answers and ends its turn, not echoes to the limit
    finally:
        p.stop()


def test_chat_repl_answers_on_the_default_model(embedded_home: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "slmnode", "chat", "--temperature", "0", "-n", "32", "--ctx", "1024"],
                          input=f"{QUESTION}\n/bye\n", capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SLMNODE_HOME": str(embedded_home)})
    assert done.returncode == 0, done.stderr
    assert f"loading {SMOLLM2.name}" in done.stderr
    assert "Paris" in done.stdout, done.stdout
