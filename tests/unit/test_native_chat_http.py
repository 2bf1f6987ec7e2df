"""Every family's canned native answer, through the real HTTP app and the real ``openai`` client, becomes
``tool_calls`` (non-streamed and streamed deltas) and ``reasoning_content``; thinking never reaches ``content``.
The same answer reaches Ollama's ``message.thinking``/``tool_calls``. The engine is a fake that replays the canned
text in 3-character pieces (as tokens arrive); the model's real chat template renders the prompt."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from slmnode.config import Settings
from slmnode.engine.client import Done, Event, Started, Token
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.server.app import create_app
from slmnode.server.models import ModelManager, ServedModel
from slmnode.server.service import Node
from tests.unit.chat.cases import CASES, TOOLS, Case, template
from tests.unit.test_app_fake_engine import GEMMA, FakeEngine

NATIVE = [c for c in CASES if c.template and (c.calls or c.reasoning)]
OPENAI_TOOLS = [t.as_openai() for t in TOOLS]


class CannedEngine(FakeEngine):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.release.set()
        self.text = text

    async def generate(self, prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
        self.prompts.append((prompt, params))
        yield Started(5, 0)
        for at in range(0, len(self.text), 3):
            yield Token(self.text[at:at + 3])
        yield Done("stop", Usage(prompt_tokens=5, completion_tokens=9, prompt_ms=1, generation_ms=1))


def _client(case: Case) -> tuple[TestClient, CannedEngine]:
    info = dataclasses.replace(GEMMA, chat_template=template(case.template), has_chat_template=True,
                               architecture=case.architecture or GEMMA.architecture)
    eng = CannedEngine(case.text)
    manager = ModelManager(ServedModel("fake:1", "/x.gguf", info), lambda m: eng)  # type: ignore[arg-type,return-value]
    return TestClient(create_app(Node(models=manager, settings=Settings()))), eng


def _extra(case: Case) -> dict[str, Any]:
    if case.template.startswith("Qwen3.5"):  # its template opens thinking unless told not to
        return {"chat_template_kwargs": {"enable_thinking": case.thinking_open}}
    return {}


def _expected(case: Case) -> list[tuple[str, dict[str, Any]]]:
    return [(n, a) for n, a in case.calls]


@pytest.mark.parametrize("case", NATIVE, ids=[c.id for c in NATIVE])
def test_openai_chat_gets_native_calls_and_reasoning(case: Case) -> None:
    client, eng = _client(case)
    with client:
        oa = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=client, max_retries=0)
        msgs: Any = [{"role": "user", "content": "What time is it in Paris? Use a tool."}]
        r = oa.chat.completions.create(model="fake:1", messages=msgs, tools=OPENAI_TOOLS, extra_body=_extra(case))
        assert "special_function" in eng.prompts[0][0]  # the tools went into the prompt
        msg = r.choices[0].message
        got = [(c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls or []]
        assert got == _expected(case)
        assert r.choices[0].finish_reason == ("tool_calls" if case.calls else "stop")
        assert (msg.model_extra or {}).get("reasoning_content", "") == case.reasoning
        assert (msg.content or "") == case.content
        assert "</think>" not in (msg.content or "")

        stream = oa.chat.completions.create(model="fake:1", messages=msgs, tools=OPENAI_TOOLS, stream=True,
                                            extra_body=_extra(case))
        content, reasoning, calls = "", "", {}
        for chunk in stream:
            if not chunk.choices:
                continue
            d = chunk.choices[0].delta
            content += d.content or ""
            reasoning += (d.model_extra or {}).get("reasoning_content") or ""
            for tc in d.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": tc.id, "name": "", "arguments": ""})
                entry["name"] += (tc.function.name or "") if tc.function else ""
                entry["arguments"] += (tc.function.arguments or "") if tc.function else ""
        assert [(c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())] == _expected(case)
        assert all(str(c["id"]).startswith("call") or len(str(c["id"])) == 9 for c in calls.values())
        assert (content, reasoning) == (case.content, case.reasoning)


@pytest.mark.parametrize("case", [c for c in NATIVE if c.calls and c.reasoning], ids=lambda c: c.id)
def test_ollama_chat_gets_thinking_and_tool_calls(case: Case) -> None:
    client, _ = _client(case)
    body = {"model": "fake:1", "messages": [{"role": "user", "content": "time?"}], "tools": OPENAI_TOOLS,
            "stream": False, **({"think": case.thinking_open} if case.template.startswith("Qwen3.5") else {})}
    with client:
        msg = client.post("/api/chat", json=body).json()["message"]
        assert msg.get("thinking", "") == case.reasoning
        assert [(c["function"]["name"], c["function"]["arguments"]) for c in msg["tool_calls"]] == _expected(case)
        lines = [json.loads(line) for line in client.post("/api/chat", json={**body, "stream": True}).text.splitlines()]
        assert "".join(m["message"].get("thinking", "") for m in lines) == case.reasoning
        assert [(c["function"]["name"], c["function"]["arguments"]) for c in lines[-1]["message"]["tool_calls"]] \
            == _expected(case)


QWEN35 = next(c for c in CASES if c.id == "qwen35-call")
ASK = [{"role": "user", "content": "time?"}]


@pytest.mark.parametrize(("extra", "budget", "opened"), [
    ({"max_tokens": 100}, 75, True),  # a quarter of max_tokens kept for the answer
    ({"max_tokens": 40}, 24, True),  # at least 16 kept
    ({"max_tokens": 100, "thinking_budget_tokens": 10}, 10, True),
    ({}, None, True),  # no max_tokens: no budget, as llama-server
    ({"max_tokens": 100, "reasoning_effort": "none"}, None, False),
    ({"max_tokens": 100, "chat_template_kwargs": {"enable_thinking": False}}, None, False),
], ids=["default", "small", "explicit", "unbounded", "effort-none", "template-off"])
def test_the_engine_gets_the_thinking_budget_and_whether_the_prompt_opened_thinking(
        extra: dict[str, Any], budget: int | None, opened: bool) -> None:
    client, eng = _client(QWEN35)
    with client:
        assert client.post("/v1/chat/completions", json={"messages": ASK, **extra}).status_code == 200
    prompt, params = eng.prompts[0]
    assert prompt.rstrip().endswith("<think>") == opened
    assert params.reasoning_budget == (budget if opened else None)
    assert params.reasoning_open == opened


def test_tools_auto_get_a_lazy_grammar_and_a_forced_tool_a_grammar_from_the_first_token() -> None:
    client, eng = _client(QWEN35)
    with client:
        body = {"messages": ASK, "tools": OPENAI_TOOLS}
        client.post("/v1/chat/completions", json=body)
        client.post("/v1/chat/completions", json={**body, "tool_choice": {"type": "function",
                                                                          "function": {"name": "get_time"}}})
        client.post("/v1/chat/completions", json={**body, "response_format": {"type": "json_object"}})
    (_, auto), (forced_prompt, forced), (_, structured) = eng.prompts
    assert auto.grammar and auto.grammar_triggers and "<function=get_time>" in auto.grammar
    assert forced.grammar and not forced.grammar_triggers
    assert "get_time" in forced.grammar and "special_function" not in forced.grammar  # only the chosen tool
    assert not forced_prompt.rstrip().endswith("<think>")  # a forced call is not preceded by thinking
    assert structured.grammar is None and structured.json_object  # JSON output: no tool grammar, no thinking
