"""The real ``anthropic`` SDKs (Python and JS) against a real node serving the embedded model.

The embedded model is a base model: assertions are on events, shapes, schema validity and usage, never on wording.
This SDK version no longer takes ``temperature`` as an argument; the wire still does (``extra_body``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anthropic
import httpx
import jsonschema
import pytest

from tests.conftest import RunningNode, start_node

pytestmark = pytest.mark.integration

JS_DIR = Path(__file__).parents[1] / "js"
GREEDY = {"temperature": 0}
COUNT: list[Any] = [{"role": "user", "content": "Count: 1, 2, 3,"}]
WEATHER: Any = {"name": "get_weather", "description": "Weather forecast for a city",
                "input_schema": {"type": "object", "properties": {
                    "city": {"type": "string", "maxLength": 30},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                    "required": ["city", "days", "unit"]}}
EVENT: Any = {"name": "create_event", "description": "Put an event in the calendar",
              "input_schema": {"type": "object", "properties": {"title": {"type": "string", "maxLength": 40}},
                               "required": ["title"]}}


@pytest.fixture(scope="module")
def client(node: RunningNode) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=node.base_url, api_key="unused", max_retries=0, timeout=600)


def _sse(text: str) -> list[dict[str, Any]]:
    """The events of an SSE body; each ``event:`` line must name its data's type."""
    out = []
    for chunk in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.split("\n"))
        data = json.loads(fields["data"])
        assert data["type"] == fields["event"], chunk
        out.append(data)
    return out


def test_create_answers_with_a_text_block_and_usage(client: anthropic.Anthropic, node: RunningNode) -> None:
    m = client.messages.create(model=node.model, max_tokens=8, messages=COUNT, extra_body=GREEDY,
                               system=[{"type": "text", "text": "You count."}])
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_") and m.model == node.model
    assert [b.type for b in m.content] == ["text"]
    assert m.stop_reason in ("end_turn", "max_tokens") and m.stop_sequence is None
    assert 0 < m.usage.output_tokens <= 8
    assert (m.stop_reason == "max_tokens") == (m.usage.output_tokens == 8)
    assert m.usage.input_tokens + (m.usage.cache_read_input_tokens or 0) > 5


def test_count_tokens_is_the_prompt_generation_counts(client: anthropic.Anthropic, node: RunningNode) -> None:
    kwargs: Any = {"model": node.model, "messages": COUNT, "system": "You count.", "tools": [WEATHER]}
    counted = client.messages.count_tokens(**kwargs)
    m = client.messages.create(max_tokens=4, extra_body=GREEDY, **kwargs)
    assert counted.input_tokens == m.usage.input_tokens + (m.usage.cache_read_input_tokens or 0)
    bigger = client.messages.count_tokens(model=node.model, messages=[*COUNT, {"role": "assistant", "content": "4"},
                                                                      {"role": "user", "content": "go on"}])
    assert bigger.input_tokens > client.messages.count_tokens(model=node.model, messages=COUNT).input_tokens


def test_stream_sends_anthropics_event_sequence(node: RunningNode) -> None:
    body = {"model": node.model, "max_tokens": 8, "stream": True, "messages": COUNT, **GREEDY}
    with httpx.stream("POST", f"{node.base_url}/v1/messages", json=body, timeout=600) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r.read().decode())
    types = [e["type"] for e in events]
    n = types.count("content_block_delta")
    assert n >= 1
    assert types == ["message_start", "content_block_start", "ping", *["content_block_delta"] * n,
                     "content_block_stop", "message_delta", "message_stop"]
    start, block, delta = events[0]["message"], events[1], events[-2]
    assert start["content"] == [] and start["stop_reason"] is None and start["model"] == node.model
    assert block == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert all(e["index"] == 0 and e["delta"]["type"] == "text_delta" for e in events[3:3 + n])
    assert delta["delta"]["stop_reason"] in ("end_turn", "max_tokens")
    assert 0 < delta["usage"]["output_tokens"] <= 8 and delta["usage"]["input_tokens"] >= 0


def test_sdk_stream_text_stream_matches_the_final_message(client: anthropic.Anthropic, node: RunningNode) -> None:
    with client.messages.stream(model=node.model, max_tokens=12, messages=COUNT, extra_body=GREEDY) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and [b.type for b in final.content] == ["text"]
    assert final.content[0].type == "text" and final.content[0].text == text
    assert 0 < final.usage.output_tokens <= 12 and final.stop_reason in ("end_turn", "max_tokens")


def test_stop_sequence_ends_the_answer_before_it(client: anthropic.Anthropic, node: RunningNode) -> None:
    free = client.messages.create(model=node.model, max_tokens=12, messages=COUNT, extra_body=GREEDY)
    assert free.content[0].type == "text" and " " in free.content[0].text  # the model writes spaces here
    cut = client.messages.create(model=node.model, max_tokens=12, messages=COUNT, extra_body=GREEDY,
                                 stop_sequences=[" ", "\n"])
    assert cut.content[0].type == "text" and not set(cut.content[0].text) & {" ", "\n"}
    assert cut.usage.output_tokens < 12
    assert cut.stop_reason == "stop_sequence" and cut.stop_sequence in (" ", "\n")


@pytest.mark.parametrize("choice", [{"type": "tool", "name": "get_weather"}, {"type": "any"}])
def test_forced_tool_choice_gives_a_valid_input(client: anthropic.Anthropic, node: RunningNode,
                                                choice: Any) -> None:
    m = client.messages.create(model=node.model, max_tokens=80, tools=[WEATHER, EVENT], tool_choice=choice,
                               messages=[{"role": "user", "content": "Weather in Paris for 3 days?"}],
                               extra_body=GREEDY)
    assert m.stop_reason == "tool_use"
    (call,) = [b for b in m.content if b.type == "tool_use"]
    assert call.type == "tool_use" and call.id
    schema = {t["name"]: t["input_schema"] for t in (WEATHER, EVENT)}[call.name]
    if choice["type"] == "tool":
        assert call.name == "get_weather"
    jsonschema.validate(call.input, schema)


def test_streamed_forced_tool_call_accumulates_to_a_valid_input(client: anthropic.Anthropic,
                                                                 node: RunningNode) -> None:
    with client.messages.stream(model=node.model, max_tokens=80, tools=[WEATHER],
                                tool_choice={"type": "tool", "name": "get_weather"},
                                messages=[{"role": "user", "content": "Weather in Oslo?"}], extra_body=GREEDY) as s:
        types = [e.type for e in s]
        final = s.get_final_message()
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    (call,) = final.content
    assert call.type == "tool_use" and call.name == "get_weather" and final.stop_reason == "tool_use"
    jsonschema.validate(call.input, WEATHER["input_schema"])


def test_tool_result_turn_continues_the_conversation(client: anthropic.Anthropic, node: RunningNode) -> None:
    m = client.messages.create(model=node.model, max_tokens=16, tools=[WEATHER], extra_body=GREEDY, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Paris", "days": 1, "unit": "celsius"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C, sunny"}]}])
    assert m.stop_reason in ("end_turn", "max_tokens", "tool_use") and m.content
    for b in m.content:
        if b.type == "tool_use":
            jsonschema.validate(b.input, WEATHER["input_schema"])


def _error(r: httpx.Response, status: int, etype: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == etype and body["error"]["message"], body


def test_bad_input_on_every_route_gets_anthropic_errors_and_the_node_keeps_serving(
        client: anthropic.Anthropic, node: RunningNode) -> None:
    url = node.base_url
    with httpx.Client(base_url=url, timeout=600) as http:
        for path in ("/v1/messages", "/v1/messages/count_tokens"):
            _error(http.post(path, content=b'{"model": '), 400, "invalid_request_error")
            _error(http.post(path, json={"model": node.model, "max_tokens": 4, "messages": [
                {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": ""}}]}]}),
                400, "invalid_request_error")
            _error(http.post(path, json={"model": "claude-nope", "max_tokens": 4, "messages": COUNT}),
                   404, "not_found_error")
        _error(http.post("/v1/messages", json={"model": node.model, "messages": COUNT}), 400, "invalid_request_error")
        _error(http.post("/v1/messages", json={"model": node.model, "max_tokens": 100_000, "messages": COUNT}),
               400, "invalid_request_error")  # past the context
        _error(http.post("/v1/messages", json={"model": node.model, "max_tokens": 100_000, "stream": True,
                                               "messages": COUNT}), 400, "invalid_request_error")
    with pytest.raises(anthropic.NotFoundError) as nf:
        client.messages.create(model="claude-nope", max_tokens=4, messages=COUNT)
    assert isinstance(nf.value.body, dict) and nf.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=node.model, max_tokens=4, messages=[{"role": "user", "content": "hi"},
                                                                        {"role": "assistant", "content": "Hel"}])
    ok = client.messages.create(model=node.model, max_tokens=4, messages=COUNT, extra_body=GREEDY)
    assert ok.usage.output_tokens > 0


def test_x_api_key_from_the_sdk_is_checked(embedded_home: Path) -> None:
    p, url = start_node(embedded_home, "--ctx", "512", "--parallel", "1", "--api-key", "k3y")
    try:
        with pytest.raises(anthropic.AuthenticationError) as denied:
            anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0).messages.count_tokens(
                model="default", messages=COUNT)
        assert isinstance(denied.value.body, dict) and denied.value.body["error"]["type"] == "authentication_error"
        good = anthropic.Anthropic(base_url=url, api_key="k3y", max_retries=0, timeout=600)
        assert good.messages.count_tokens(model="default", messages=COUNT).input_tokens > 5
        assert good.messages.create(model="default", max_tokens=2, messages=COUNT).usage.output_tokens > 0
    finally:
        p.stop()


def test_js_sdk_create_stream_tool_and_count_tokens(node: RunningNode) -> None:
    if shutil.which("node") is None:
        pytest.skip("node (Node.js) is not on PATH: the @anthropic-ai/sdk test needs it")
    if not (JS_DIR / "node_modules" / "@anthropic-ai" / "sdk").is_dir():
        pytest.skip("tests/js/node_modules has no @anthropic-ai/sdk: run `npm ci` in tests/js")
    run = subprocess.run(["node", str(JS_DIR / "anthropic_sdk.mjs"), node.base_url, node.model], cwd=JS_DIR,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert [b["type"] for b in out["create"]["content"]] == ["text"] and out["create"]["usage"]["output_tokens"] > 0
    events = out["streamEvents"]
    n = events.count("content_block_delta")
    assert n >= 1 and events == ["message_start", "content_block_start", *["content_block_delta"] * n,
                                 "content_block_stop", "message_delta", "message_stop"]  # the SDK drops ping
    final = out["streamFinal"]
    assert final["content"][0]["text"] == out["streamText"] and final["usage"]["output_tokens"] > 0
    (call,) = out["tool"]["content"]
    assert call["type"] == "tool_use" and call["name"] == "get_weather" and out["tool"]["stop_reason"] == "tool_use"
    jsonschema.validate(call["input"], out["toolSchema"])
    assert out["count"]["input_tokens"] == out["create"]["usage"]["input_tokens"] + \
        out["create"]["usage"]["cache_read_input_tokens"]
    assert out["error"]["status"] == 404 and out["error"]["body"]["error"]["type"] == "not_found_error"
