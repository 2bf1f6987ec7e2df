"""The JavaScript clients agents are written with, against a real node: the Vercel AI SDK
(``ai`` + ``@ai-sdk/openai-compatible``: ``generateText``, ``streamText`` with tools), LangChain JS
(``bindTools``, ``invoke``, ``stream``) and ``@mariozechner/pi-ai`` (streams with ``include_usage``,
``tools``, ``tool_choice``, ``max_completion_tokens``). Installed from ``tests/js/package-lock.json`` by
``make test``. The model is tiny: tools are forced (grammar), and assertions are on calls and shapes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import RunningNode

pytestmark = pytest.mark.integration
JS_DIR = Path(__file__).resolve().parents[1] / "js"


@pytest.fixture(scope="module")
def seen(node: RunningNode) -> dict[str, Any]:
    if shutil.which("node") is None:
        pytest.skip("node (Node.js 20+) is not on PATH: the JavaScript client tests need it")
    if not (JS_DIR / "node_modules" / "ai").is_dir():
        pytest.skip("tests/js/node_modules is missing: run `npm ci` in tests/js (make test does)")
    run = subprocess.run(["node", str(JS_DIR / "openai_clients.mjs"), node.base_url, node.model], cwd=JS_DIR,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(json.loads(run.stdout))


def _valid_weather_calls(calls: list[dict[str, Any]], schema: dict[str, Any]) -> None:
    assert calls, "no tool call"
    for call in calls:
        assert call["name"] == "get_weather"
        jsonschema.validate(call["input"], schema)


def test_vercel_ai_sdk_generate_and_stream_get_valid_tool_calls(seen: dict[str, Any]) -> None:
    _valid_weather_calls(seen["aiGenerate"]["toolCalls"], seen["schema"])
    assert seen["aiGenerate"]["finish"] == "tool-calls"
    _valid_weather_calls(seen["aiStream"]["toolCalls"], seen["schema"])
    assert "tool-call" in seen["aiStream"]["parts"] and seen["aiStream"]["parts"][-1] == "finish"
    assert seen["aiText"]["outputTokens"] > 0


def test_langchain_bind_tools_invoke_and_stream(seen: dict[str, Any]) -> None:
    _valid_weather_calls(seen["lcInvoke"], seen["schema"])
    _valid_weather_calls(seen["lcStream"], seen["schema"])


def test_pi_ai_streams_a_tool_call_with_usage(seen: dict[str, Any]) -> None:
    pi = seen["pi"]
    assert pi["errorMessage"] is None and pi["stopReason"] == "toolUse"
    _valid_weather_calls(pi["toolCalls"], seen["schema"])
    assert pi["events"][0] == "start" and "toolcall_end" in pi["events"] and pi["events"][-1] == "done"
    assert pi["usage"]["input"] > 0 and pi["usage"]["output"] > 0  # stream_options.include_usage honoured
    assert seen["piText"]["errorMessage"] is None and seen["piText"]["stopReason"] in ("stop", "length")
