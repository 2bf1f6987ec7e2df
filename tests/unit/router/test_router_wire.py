"""/v1/messages and /v1/responses through the router: the same decision, privacy guard and ledger rows as chat
completions; a cloud answer comes from an OpenAI-format upstream (a real local HTTP "cloud") in the protocol's
own shape. Fake engine for the local side."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from slmnode.chat.types import Conversation, Message, ToolCall, ToolChoice, ToolSpec
from slmnode.config import Settings
from slmnode.engine.protocol import GenerationParams
from slmnode.router import anthropic_upstream
from slmnode.router.config import KeyRule, RouterConfig, Upstream
from slmnode.router.ledger import Ledger
from slmnode.router.route import Router
from slmnode.router.wire import Wire, chat_request, chat_result
from slmnode.server.anthropic_api import MessagesRequest
from slmnode.server.app import create_app
from slmnode.server.models import ModelManager, ServedModel
from slmnode.server.service import Node
from tests.fakecloud import FakeCloud
from tests.unit.router.test_router_app import _app
from tests.unit.test_app_fake_engine import FakeEngine
from tests.unit.test_chat_format import GEMMA


@pytest.fixture()
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud(slow_s=3) as c:
        yield c


PHONE_STORY = "Write a short story about a lighthouse keeper and call me at (212) 555-0123 when it is done"
CODE = "Write a Python function that merges two sorted lists"


def _messages(client: TestClient, text: str, model: str = "auto", **extra: Any) -> Any:
    return client.post("/v1/messages", json={"model": model, "max_tokens": 32,
                                             "messages": [{"role": "user", "content": text}], **extra})


def _responses(client: TestClient, text: str, model: str = "auto", **extra: Any) -> Any:
    return client.post("/v1/responses", json={"model": model, "input": text, **extra})


def _sse(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and "[DONE]" not in line]


def test_private_data_in_messages_stays_local_even_when_cloud_is_asked(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, router = _app(tmp_path, cloud)
    with client:
        for model, headers in (("auto", {}), ("main", {}), ("auto", {"X-Slmnode-Route": "cloud"})):
            r = client.post("/v1/messages", headers=headers, json={
                "model": model, "max_tokens": 32, "messages": [{"role": "user", "content": PHONE_STORY}]})
            assert r.status_code == 200, r.text
            assert r.headers["x-slmnode-route"] == "local", model
            assert "private data (phone" in r.headers["x-slmnode-route-reason"]
            assert "555-0123" not in r.headers["x-slmnode-route-reason"]
            body = r.json()
            assert body["type"] == "message" and body["content"][0]["text"].strip() == "local answer"
            assert body["model"] == "fake:1"  # the routing name is not a local model: the default answers
    assert cloud.hits["ok"] == 0
    rows = router.ledger.rows()
    assert len(rows) == 3
    assert all((row["route"], row["status"], row["tokens_in"], row["tokens_out"]) == ("local", "ok", 7, 2)
               for row in rows)
    assert all("555-0123" not in row["reason"] for row in rows)


def test_cloud_routed_responses_reach_the_cloud_as_chat_completion(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, router = _app(tmp_path, cloud)
    with client:
        r = _responses(client, CODE, instructions="Be brief.", max_output_tokens=50)
    assert r.status_code == 200, r.text
    assert (r.headers["x-slmnode-route"], r.headers["x-slmnode-task"]) == ("main", "code")
    sent = cloud.bodies[-1]
    assert sent["model"] == "model-main" and sent["max_tokens"] == 50 and sent["stream"] is False
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": CODE}]
    body = r.json()
    assert (body["object"], body["status"]) == ("response", "completed")
    [item] = body["output"]
    assert item["type"] == "message" and item["content"][0]["text"] == "cloud says hi"
    assert (body["usage"]["input_tokens"], body["usage"]["output_tokens"]) == (11, 3)
    [row] = router.ledger.rows()
    assert (row["route"], row["model"], row["status"], row["tokens_in"], row["tokens_out"], row["stream"]) == \
        ("main", "model-main", "ok", 11, 3, 0)


def test_cloud_answer_replayed_as_anthropic_stream_events(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, router = _app(tmp_path, cloud)
    with client:
        r = _messages(client, CODE, stream=True)
    assert r.status_code == 200 and r.headers["x-slmnode-route"] == "main"
    events = _sse(r.text)
    assert [e["type"] for e in events] == ["message_start", "content_block_start", "ping", "content_block_delta",
                                           "content_block_stop", "message_delta", "message_stop"]
    assert events[3]["delta"] == {"type": "text_delta", "text": "cloud says hi"}
    assert events[5]["delta"]["stop_reason"] == "end_turn" and events[5]["usage"]["output_tokens"] == 3
    assert cloud.bodies[-1]["stream"] is False  # fetched whole, replayed as events
    [row] = router.ledger.rows()
    assert (row["route"], row["status"], row["stream"], row["tokens_out"]) == ("main", "ok", 1, 3)


def test_local_streams_are_tallied_for_the_ledger(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, router = _app(tmp_path, cloud)
    with client:
        r = _responses(client, "Classify the sentiment of this review: 'great battery'", stream=True)
        m = _messages(client, "Summarize this in one sentence: the meeting moved.", stream=True)
    assert r.headers["x-slmnode-route"] == m.headers["x-slmnode-route"] == "local"
    assert _sse(r.text)[-1]["type"] == "response.completed"
    assert _sse(m.text)[-1]["type"] == "message_stop"
    rows = router.ledger.rows()
    assert sorted(row["task"] for row in rows) == ["classification", "summarization"]
    assert all((row["route"], row["status"], row["stream"], row["tokens_in"], row["tokens_out"]) ==
               ("local", "ok", 1, 7, 2) for row in rows)
    assert cloud.hits["ok"] == 0


def test_upstream_rejection_in_the_protocols_error_shape(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _, router = _app(tmp_path, cloud, upstreams=[("main", "400")])
    with client:
        m = _messages(client, CODE)
        r = _responses(client, CODE)
    assert m.status_code == 400 and m.json()["type"] == "error"
    assert m.json()["error"] == {"type": "invalid_request_error", "message": "fake 400"}
    assert r.status_code == 400 and r.json()["error"]["message"] == "fake 400"
    assert [row["status"] for row in router.ledger.rows()] == ["error", "error"]


def test_anthropic_api_key_names_the_caller_in_the_ledger(tmp_path: Path, cloud: FakeCloud,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_KEY", "bot-secret")
    client, _, router = _app(tmp_path, cloud, keys=[KeyRule(name="bot", key_env="BOT_KEY", route="local")])
    with client:
        r = client.post("/v1/messages", headers={"x-api-key": "bot-secret"},
                        json={"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": CODE}]})
    assert r.status_code == 200 and r.headers["x-slmnode-route"] == "local"  # the key's route wins over "code"
    assert router.ledger.rows()[0]["api_key"] == "bot"


# -- the translations ------------------------------------------------------------------------------------------
def test_conversation_with_tool_history_becomes_a_chat_request() -> None:
    conv = Conversation(
        messages=[Message("system", "S"), Message("user", "weather?"),
                  Message("assistant", "", reasoning="hmm", tool_calls=(ToolCall("t1", "get_weather", '{"city":"Oslo"}'),)),
                  Message("tool", "21C", tool_call_id="t1", name="get_weather")],
        params=GenerationParams(max_tokens=64, stop=["END"], json_schema=None),
        model="auto", tools=[ToolSpec("get_weather", "Weather", {"type": "object"})],
        tool_choice=ToolChoice("function", "get_weather"), parallel_tool_calls=False)
    body = chat_request(conv)
    assert body["messages"][2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]}
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "21C"}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False and body["stop"] == ["END"] and body["max_tokens"] == 64
    assert "temperature" not in body  # not given: the upstream's default, not ours


def test_cloud_tool_calls_become_anthropic_tool_use_blocks() -> None:
    answer = {"model": "m", "choices": [{"finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "reasoning_content": "think",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4}}
    result = chat_result(answer, "fallback")
    body = MessagesRequest(model="auto", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    wire = Wire("anthropic", body, Conversation([Message("user", "hi")], GenerationParams()), local=None)  # type: ignore[arg-type]
    msg = json.loads(bytes(wire.render(result, {}).body))
    assert [b["type"] for b in msg["content"]] == ["thinking", "tool_use"]
    assert msg["content"][1] == {"type": "tool_use", "id": "c1", "name": "f", "input": {"x": 1}}
    assert msg["stop_reason"] == "tool_use" and msg["usage"]["output_tokens"] == 4


# -- an Anthropic-format upstream -----------------------------------------------------------------------------
def _anthropic_app(tmp_path: Path, cloud: FakeCloud, mode: str = "ok") -> tuple[TestClient, Router]:
    eng = FakeEngine("local answer")
    eng.release.set()
    node = Node(models=ModelManager(ServedModel("fake:1", "/x.gguf", GEMMA), lambda m: eng),  # type: ignore[arg-type,return-value]
                settings=Settings(ctx=512))
    up = Upstream(name="claude", base_url=cloud.base(mode), model="claude-haiku", api_key_env="FAKE_CLOUD_KEY",
                  api="anthropic", input_usd_per_mtok=1.0, output_usd_per_mtok=5.0, timeout=1.0)
    router = Router(RouterConfig(upstreams=[up]), Ledger(tmp_path / "ledger.db"))
    node.router = router
    node.services.append(router)
    return TestClient(create_app(node)), router


def test_chat_completions_to_an_anthropic_upstream(tmp_path: Path, cloud: FakeCloud,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CLOUD_KEY", "sk-ant-test")
    client, router = _anthropic_app(tmp_path, cloud)
    with client:
        r = client.post("/v1/chat/completions", json={"model": "auto", "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": CODE}], "temperature": 1.5})
        s = client.post("/v1/chat/completions", json={"model": "claude", "stream": True,
                                                      "messages": [{"role": "user", "content": CODE}]})
    assert r.status_code == 200 and r.headers["x-slmnode-route"] == "claude"
    assert r.json()["choices"][0]["message"]["content"] == "anthropic cloud says hi"
    assert r.json()["usage"] == {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
    sent = cloud.bodies[0]
    assert sent == {"model": "claude-haiku", "system": "Be brief.", "max_tokens": 4096, "temperature": 1.0,
                    "messages": [{"role": "user", "content": [{"type": "text", "text": CODE}]}]}
    assert cloud.auth[0] == "sk-ant-test"  # x-api-key, not a bearer token
    chunks = _sse(s.text)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == \
        "anthropic cloud says hi"
    assert s.text.rstrip().endswith("data: [DONE]")
    rows = router.ledger.rows()
    assert [(row["route"], row["status"], row["tokens_in"], row["tokens_out"]) for row in rows] == \
        [("claude", "ok", 11, 4)] * 2
    assert rows[0]["cost_usd"] == pytest.approx((11 * 1.0 + 4 * 5.0) / 1e6)


def test_messages_and_responses_to_an_anthropic_upstream(tmp_path: Path, cloud: FakeCloud) -> None:
    client, router = _anthropic_app(tmp_path, cloud)
    tools = [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}}]
    history = [{"role": "user", "content": CODE},
               {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": 1}}]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "found"}]}]
    with client:
        m = client.post("/v1/messages", json={"model": "claude", "max_tokens": 64, "messages": history,
                                              "tools": tools, "tool_choice": {"type": "tool", "name": "lookup"}})
        r = _responses(client, CODE, model="claude", stream=True)
    assert m.status_code == 200 and m.json()["content"] == [{"type": "text", "text": "anthropic cloud says hi"}]
    sent = cloud.bodies[0]
    assert sent["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "found"}]}]
    assert sent["tool_choice"] == {"type": "tool", "name": "lookup"} and sent["max_tokens"] == 64
    assert sent["tools"] == [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}}]
    events = _sse(r.text)
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "anthropic cloud says hi"
    assert [row["route"] for row in router.ledger.rows()] == ["claude", "claude"]


def test_anthropic_upstream_rejection_reaches_each_client_in_its_shape(tmp_path: Path, cloud: FakeCloud) -> None:
    client, _ = _anthropic_app(tmp_path, cloud, "400")
    with client:
        c = client.post("/v1/chat/completions", json={"model": "claude", "messages": [{"role": "user", "content": "x"}]})
        m = _messages(client, "x", model="claude")
    assert c.status_code == 400 and c.json()["error"]["message"] == "fake 400"
    assert m.status_code == 400 and m.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                                            "message": "fake 400"}}


def test_chat_body_to_anthropic_and_its_tool_use_back() -> None:
    body = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "let me look", "tool_calls": [
                             {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "42"},
                         {"role": "user", "content": "and?"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "required", "parallel_tool_calls": False, "stop": "END", "max_tokens": 9,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}}
    out = anthropic_upstream.messages_body(body, "m")
    assert out["messages"][1] == {"role": "assistant", "content": [
        {"type": "text", "text": "let me look"}, {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}]}
    assert out["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "c1", "content": "42"}, {"type": "text", "text": "and?"}]}
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["stop_sequences"] == ["END"] and out["max_tokens"] == 9
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": {"type": "object"}}}
    done = anthropic_upstream.completion({"id": "msg_1", "model": "m", "stop_reason": "tool_use", "content": [
        {"type": "thinking", "thinking": "hm"}, {"type": "tool_use", "id": "t9", "name": "f", "input": {"a": 2}}],
        "usage": {"input_tokens": 3, "output_tokens": 5}})
    msg = done["choices"][0]["message"]
    assert msg["content"] is None and msg["reasoning_content"] == "hm"
    assert msg["tool_calls"] == [{"id": "t9", "type": "function", "function": {"name": "f", "arguments": '{"a": 2}'}}]
    assert done["choices"][0]["finish_reason"] == "tool_calls" and done["usage"]["total_tokens"] == 8
