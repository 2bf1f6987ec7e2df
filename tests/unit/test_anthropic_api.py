"""Anthropic Messages adapter: wire → Conversation, chat events → Anthropic events, errors and auth (fake engine).

That serving works end to end, with the real SDKs on the real model, is in tests/integration/test_anthropic_api.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import pytest
from fastapi.testclient import TestClient

from slmnode.chat.types import ChatEvent, ChatResult, Finished, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta
from slmnode.config import Settings
from slmnode.engine.client import Event
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.errors import EngineNotReady, RequestError
from slmnode.server.anthropic_api import CountTokensRequest, MessagesRequest, StreamRenderer, conversation, message
from slmnode.server.app import create_app
from slmnode.server.models import ModelManager, ServedModel
from slmnode.server.service import Node
from tests.unit.test_app_fake_engine import GEMMA, FakeEngine

USAGE = Usage(prompt_tokens=30, cached_tokens=12, completion_tokens=9)
WEATHER = {"name": "weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


class CountingEngine(FakeEngine):
    """The fake engine, plus the tokenize op: counts whitespace-separated words, and records the text."""

    def __init__(self) -> None:
        super().__init__()
        self.counted: list[str] = []

    async def count_tokens(self, text: str) -> int:
        self.counted.append(text)
        return len(text.split())


def make(settings: Settings | None = None) -> tuple[TestClient, CountingEngine]:
    eng = CountingEngine()
    eng.release.set()
    manager = ModelManager(ServedModel("fake:1", "/x.gguf", GEMMA), lambda m: eng)  # type: ignore[arg-type,return-value]
    return TestClient(create_app(Node(models=manager, settings=settings or Settings()))), eng


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "fake:1", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], **extra}


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for chunk in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        out.append((lines["event"], data))
    return out


# -- chat events → Anthropic -------------------------------------------------------------------------------------
RESULT = ChatResult("Calling it.", "Let me think.", [ToolCall("call_1", "weather", '{"city": "Paris"}')],
                    "tool_calls", USAGE, "fake:1")
SYNTHETIC: list[ChatEvent] = [ReasoningDelta("Let me "), ReasoningDelta("think."), TextDelta("Calling it."),
                              ToolCallDelta(0, '{"city": ', id="call_1", name="weather"), ToolCallDelta(0, '"Paris"}'),
                              Finished(RESULT)]


def render(events: list[ChatEvent]) -> str:
    r = StreamRenderer("msg_1", "fake:1")
    return "".join(r.start() + [line for ev in events for line in r.feed(ev)])


def test_stream_maps_reasoning_text_and_tool_call_to_anthropic_events_in_order() -> None:
    events = sse_events(render(SYNTHETIC))
    assert [(name, d.get("index"), (d.get("delta") or d.get("content_block") or {}).get("type")) for name, d in events] == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"), ("ping", None, None),
        ("content_block_delta", 0, "thinking_delta"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"), ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"), ("content_block_delta", 1, "text_delta"), ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"), ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("message_delta", None, None), ("message_stop", None, None)]
    assert events[10][1]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "weather", "input": {}}
    assert events[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[-2][1]["usage"] == {"input_tokens": 18, "output_tokens": 9, "cache_creation_input_tokens": 0,
                                      "cache_read_input_tokens": 12}


def test_the_real_sdk_accumulates_the_stream_into_thinking_text_and_tool_use() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, text=render(SYNTHETIC), headers={"content-type": "text/event-stream"})

    client = anthropic.Anthropic(api_key="k", base_url="http://node", http_client=httpx2.Client(
        transport=httpx2.MockTransport(handler)))
    with client.messages.stream(model="fake:1", max_tokens=16, messages=[{"role": "user", "content": "x"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Calling it."
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    thinking, tool = final.content[0], final.content[2]
    assert thinking.type == "thinking" and thinking.thinking == "Let me think." and thinking.signature
    assert tool.type == "tool_use" and tool.input == {"city": "Paris"} and tool.name == "weather"
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (18, 12, 9)


def test_non_streaming_message_puts_thinking_first_with_a_signature() -> None:
    msg = message(RESULT, "msg_1")
    assert [b["type"] for b in msg["content"]] == ["thinking", "text", "tool_use"]
    assert msg["content"][0]["signature"] and msg["content"][2]["input"] == {"city": "Paris"}
    assert msg["stop_reason"] == "tool_use"
    empty = message(ChatResult("", "", [], "length", USAGE, "fake:1"), "msg_2")
    assert empty["content"] == [{"type": "text", "text": ""}] and empty["stop_reason"] == "max_tokens"


# -- Anthropic request → Conversation ----------------------------------------------------------------------------
def test_request_maps_system_turns_tools_and_thinking() -> None:
    req = MessagesRequest.model_validate(body(
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "Need a tool.", "signature": "s"},
                                              {"type": "tool_use", "id": "t1", "name": "weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                                          "content": [{"type": "text", "text": "offline"}]},
                                         {"type": "text", "text": "Try again."}]}],
        tools=[WEATHER], tool_choice={"type": "tool", "name": "weather", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 8}, temperature=0.2, top_k=5, stop_sequences=["##"]))
    conv = conversation(req)
    assert [(m.role, m.content) for m in conv.messages] == [
        ("system", "Be brief.\nUse tools."), ("user", "Weather in Paris?"), ("assistant", ""),
        ("tool", "Error: offline"), ("user", "Try again.")]
    assert conv.messages[2].reasoning == "Need a tool."
    assert conv.messages[2].tool_calls == (ToolCall("t1", "weather", '{"city": "Paris"}'),)
    assert (conv.messages[3].tool_call_id, conv.messages[3].name) == ("t1", "weather")
    assert (conv.tool_choice.mode, conv.tool_choice.name, conv.parallel_tool_calls) == ("function", "weather", False)
    assert conv.tools[0].parameters == WEATHER["input_schema"]
    assert (conv.reasoning.enabled, conv.reasoning.budget_tokens) == (True, 8)
    p = conv.params
    assert (p.max_tokens, p.temperature, p.top_k, p.stop) == (16, 0.2, 5, ["##"])


@pytest.mark.parametrize(("choice", "mode"), [("auto", "auto"), ("any", "required"), ("none", "none")])
def test_tool_choice_modes(choice: str, mode: str) -> None:
    conv = conversation(MessagesRequest.model_validate(body(tools=[WEATHER], tool_choice={"type": choice})))
    assert conv.tool_choice.mode == mode


def test_thinking_disabled_and_absent() -> None:
    assert conversation(MessagesRequest.model_validate(body(thinking={"type": "disabled"}))).reasoning.enabled is False
    assert conversation(MessagesRequest.model_validate(body())).reasoning.enabled is None  # the model's default


def test_output_config_json_schema_constrains_the_answer() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    conv = conversation(MessagesRequest.model_validate(body(output_config={"format": {"type": "json_schema",
                                                                                      "schema": schema}})))
    assert conv.params.json_schema == schema


@pytest.mark.parametrize("extra", [
    {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "The answer is"}]},
    {"messages": [{"role": "system", "content": "hi"}]},
    {"tools": [{"type": "web_search_20250305", "name": "web_search", "input_schema": {}}]},
    {"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "nope"}},
    {"tool_choice": {"type": "any"}},
    {"thinking": {"type": "enabled", "budget_tokens": 16}},
    {"thinking": {"type": "enabled"}},
])
def test_refused_requests_raise_request_error(extra: dict[str, Any]) -> None:
    with pytest.raises(RequestError):
        conversation(MessagesRequest.model_validate(body(**extra)))


# -- the routes, over the fake engine ----------------------------------------------------------------------------
def assert_anthropic_error(r: Any, status: int, etype: str) -> str:
    assert r.status_code == status, r.text
    doc = r.json()
    assert doc["type"] == "error" and doc["error"]["type"] == etype, doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    return str(doc["error"]["message"])


def test_errors_have_anthropic_shape_and_status_and_the_node_keeps_serving() -> None:
    client, eng = make()
    with client:
        assert "max_tokens" in assert_anthropic_error(
            client.post("/v1/messages", json={"model": "fake:1", "messages": [{"role": "user", "content": "x"}]}),
            400, "invalid_request_error")
        assert_anthropic_error(client.post("/v1/messages", content=b'{"model": '), 400, "invalid_request_error")
        assert_anthropic_error(client.post("/v1/messages", json=body(model="claude-nope")), 404, "not_found_error")
        assert_anthropic_error(client.post("/v1/messages/count_tokens", json={"model": "fake:1", "messages": []}),
                               400, "invalid_request_error")
        assert_anthropic_error(client.post("/v1/messages/count_tokens", json={
            "model": "fake:1", "messages": [{"role": "tool", "content": "x"}]}), 400, "invalid_request_error")

        async def refuse(prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
            raise EngineNotReady("the model is not ready (state loading); retry shortly")
            yield  # pragma: no cover

        generate, eng.generate = eng.generate, refuse  # type: ignore[method-assign]
        r = client.post("/v1/messages", json=body(stream=True))
        assert_anthropic_error(r, 529, "overloaded_error")
        assert r.headers["retry-after"] == "1"
        eng.generate = generate  # type: ignore[method-assign]
        ok = client.post("/v1/messages", json=body())
        assert ok.status_code == 200 and ok.json()["content"][0]["text"] == "Hello there "
        # other routes keep their own error shapes
        assert "error" in client.post("/v1/chat/completions", json={"messages": []}).json()


def test_x_api_key_is_accepted_as_well_as_bearer() -> None:
    client, _ = make(Settings(api_key="s3cret"))
    with client:
        assert_anthropic_error(client.post("/v1/messages", json=body()), 401, "authentication_error")
        assert_anthropic_error(client.post("/v1/messages", json=body(), headers={"x-api-key": "wrong"}),
                               401, "authentication_error")
        assert client.post("/v1/messages", json=body(), headers={"x-api-key": "s3cret"}).status_code == 200
        assert client.post("/v1/messages", json=body(), headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.post("/v1/messages/count_tokens", json=body(), headers={"x-api-key": "s3cret"}).status_code == 200


def test_count_tokens_tokenizes_the_prompt_generation_would_run() -> None:
    client, eng = make()
    req = body(system="Be brief.", tools=[WEATHER])
    with client:
        counted = client.post("/v1/messages/count_tokens", json=req)
        client.post("/v1/messages", json=req)
    assert counted.status_code == 200
    assert eng.counted == [eng.prompts[-1][0]]  # the very prompt generation rendered
    assert counted.json() == {"input_tokens": len(eng.prompts[-1][0].split())}
    CountTokensRequest.model_validate(req)  # max_tokens and sampling are accepted (and unused) there
