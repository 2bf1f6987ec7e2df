"""/v1/responses logic above the engine: request → Conversation, chat events → Responses events (checked
against the openai SDK's own types), and the app over a fake engine driven by the real SDK client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, get_args

import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel

from slmnode.chat.types import (
    ChatResult,
    Conversation,
    Finished,
    Message,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.errors import RequestError
from slmnode.server.responses_api import ResponsesRequest, ResponseWriter, conversation, response_skeleton

# each event type's model in the SDK (validated one by one: errors name the exact field)
EVENT_MODELS: dict[str, type[BaseModel]] = {
    get_args(m.model_fields["type"].annotation)[0]: m
    for m in get_args(get_args(ResponseStreamEvent)[0])}
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def conv_of(**body: Any) -> Conversation:
    return conversation(ResponsesRequest(**{"input": "hi", **body}))


def run(events: list[Any], **body: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Feed chat events to a writer; every wire event must validate against the SDK's event union."""
    req = ResponsesRequest(**{"input": "hi", **body})
    writer = ResponseWriter(response_skeleton(req, conversation(req), "m"))
    out = writer.start()
    for ev in events:
        out += writer.feed(ev)
    for ev in out:
        EVENT_MODELS[ev["type"]].model_validate(ev)
    Response.model_validate(writer.response)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    return out, writer.response


def finished(finish: str = "stop", **kw: Any) -> Finished:
    return Finished(ChatResult("", "", [], finish, Usage(prompt_tokens=9, completion_tokens=4, cached_tokens=3),  # type: ignore[arg-type]
                               "m", **kw))


# ---- request mapping ---------------------------------------------------------------------------------------


def test_string_input_with_instructions_and_sampling() -> None:
    conv = conv_of(instructions="Be brief.", max_output_tokens=7, temperature=0.2, top_p=0.5, seed=4)
    assert conv.messages == [Message("system", "Be brief."), Message("user", "hi")]
    assert (conv.params.max_tokens, conv.params.temperature, conv.params.top_p, conv.params.seed) == (7, 0.2, 0.5, 4)


def test_items_map_to_turns_with_calls_joined_and_outputs_named() -> None:
    conv = conv_of(input=[
        {"role": "developer", "content": "Rules."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"},
                                                        {"type": "input_text", "text": "b"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "think"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rain"}]},
    ], tools=[WEATHER])
    assert conv.messages == [
        Message("system", "Rules."), Message("user", "a\nb"),
        Message("assistant", "Let me look.", reasoning="think",
                tool_calls=(ToolCall("c1", "get_weather", '{"city":"Oslo"}'),
                            ToolCall("c2", "get_weather", '{"city":"Rome"}'))),
        Message("tool", "sunny", tool_call_id="c1", name="get_weather"),
        Message("tool", "rain", tool_call_id="c2", name="get_weather"),
    ]
    assert conv.tools[0].name == "get_weather" and conv.tools[0].parameters == WEATHER["parameters"]


@pytest.mark.parametrize(("choice", "mode", "name"), [
    (None, "auto", None), ("none", "none", None), ("required", "required", None),
    ({"type": "function", "name": "get_weather"}, "function", "get_weather")])
def test_tool_choice(choice: Any, mode: str, name: str | None) -> None:
    tc = conv_of(tools=[WEATHER], tool_choice=choice).tool_choice
    assert (tc.mode, tc.name) == (mode, name)


def test_formats_and_reasoning_effort() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    conv = conv_of(text={"format": {"type": "json_schema", "name": "x", "schema": schema, "strict": True}})
    assert conv.params.json_schema == schema
    assert conv_of(text={"format": {"type": "json_object"}}).params.json_object
    assert conv_of(parallel_tool_calls=False).parallel_tool_calls is False
    assert conv_of().reasoning.enabled is None
    assert conv_of(reasoning={"effort": "minimal"}).reasoning.enabled is False
    assert conv_of(reasoning={"effort": "none"}).reasoning.enabled is False
    assert conv_of(reasoning={"effort": "high"}).reasoning.enabled is True
    assert conv_of(store=False).messages  # an explicit store: false is fine


@pytest.mark.parametrize(("body", "param"), [
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"store": True}, "store"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"background": True}, "background"),
    ({"input": []}, "input"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input"),
    ({"input": [{"role": "critic", "content": "x"}]}, "input"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input"),
    ({"tools": [{"type": "web_search"}]}, "tools"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
])
def test_refusals_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as exc:
        conv_of(**body)
    assert exc.value.param == param and exc.value.message


# ---- events ------------------------------------------------------------------------------------------------


def test_text_stream_events_and_final_response() -> None:
    out, resp = run([TextDelta("Hel"), TextDelta("lo"), finished()])
    assert [e["type"] for e in out] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert out[0]["response"]["status"] == "in_progress" and out[0]["response"]["output"] == []
    (item,) = resp["output"]
    assert item["type"] == "message" and item["status"] == "completed"
    assert item["content"] == [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]
    assert resp["status"] == "completed" and out[-1]["response"] == resp
    assert resp["usage"] == {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                             "output_tokens": 4,
                             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 13}


def test_reasoning_then_text_then_calls_map_to_three_kinds_of_items() -> None:
    out, resp = run([ReasoningDelta("Hmm, "), ReasoningDelta("weather."), TextDelta("Checking."),
                     ToolCallDelta(0, '{"city":', id="call_a", name="get_weather"), ToolCallDelta(0, '"Oslo"}'),
                     ToolCallDelta(1, "{}", id="call_b", name="get_weather"), finished("tool_calls")],
                    tools=[WEATHER])
    types = [e["type"] for e in out]
    assert types == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
        "response.reasoning_text.delta", "response.reasoning_text.done", "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    reasoning, message, call_a, call_b = resp["output"]
    assert reasoning["type"] == "reasoning" and reasoning["content"] == [{"type": "reasoning_text",
                                                                          "text": "Hmm, weather."}]
    assert message["content"][0]["text"] == "Checking."
    assert (call_a["call_id"], call_a["name"], call_a["arguments"]) == ("call_a", "get_weather", '{"city":"Oslo"}')
    assert call_b["call_id"] == "call_b" and call_b["id"].startswith("fc_")
    assert [e["output_index"] for e in out if e["type"] == "response.output_item.added"] == [0, 1, 2, 3]
    done = [e for e in out if e["type"] == "response.function_call_arguments.done"]
    assert [d["arguments"] for d in done] == ['{"city":"Oslo"}', "{}"]


def test_max_output_tokens_cut_is_incomplete() -> None:
    out, resp = run([TextDelta("1, 2,"), finished("length")], max_output_tokens=3)
    assert out[-1]["type"] == "response.incomplete"
    assert resp["status"] == "incomplete" and resp["incomplete_details"] == {"reason": "max_output_tokens"}
    assert resp["output"][0]["status"] == "incomplete"


def test_empty_answer_is_still_one_message() -> None:
    out, resp = run([finished()])
    assert [e["type"] for e in out][2:] == ["response.output_item.added", "response.content_part.added",
                                            "response.output_text.done", "response.content_part.done",
                                            "response.output_item.done", "response.completed"]
    assert resp["output"][0]["content"][0]["text"] == ""


def test_failure_mid_stream_is_an_error_event_then_failed() -> None:
    req = ResponsesRequest(input="hi")
    writer = ResponseWriter(response_skeleton(req, conversation(req), "m"))
    out = writer.start() + writer.feed(TextDelta("a")) + writer.fail("engine_crashed", "the worker died")
    assert [e["type"] for e in out[-2:]] == ["error", "response.failed"]
    for ev in out:
        EVENT_MODELS[ev["type"]].model_validate(ev)
    assert (out[-2]["code"], out[-2]["message"]) == ("engine_crashed", "the worker died")
    assert out[-1]["response"]["error"] == {"code": "server_error", "message": "engine_crashed: the worker died"}


# ---- the app over a fake engine, through the real SDK ------------------------------------------------------


def test_sdk_against_fake_engine_and_bad_input_keeps_serving() -> None:
    from tests.unit.test_app_fake_engine import make

    client, eng = make()
    eng.release.set()
    with client:
        sdk = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=client, max_retries=0)
        with pytest.raises(openai.BadRequestError) as exc:
            sdk.responses.create(model="fake:1", input="hi", previous_response_id="resp_123")
        err = exc.value.body
        assert isinstance(err, dict) and err["param"] == "previous_response_id" and "stateless" in err["message"]
        r = client.post("/v1/responses", json={"input": "hi", "tools": [{"type": "file_search"}]})
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
        resp = sdk.responses.create(model="fake:1", input="hi", instructions="SYS-TEXT", max_output_tokens=5)
        assert resp.output_text == "Hello there " and resp.status == "completed"
        assert resp.usage is not None and resp.usage.total_tokens == 9
        prompt, params = eng.prompts[-1]
        assert "SYS-TEXT" in prompt and params.max_tokens == 5
        with sdk.responses.stream(model="fake:1", input="hi") as stream:
            types = [ev.type for ev in stream]
            final = stream.get_final_response()
        assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                             "response.content_part.added"]
        assert types.count("response.output_text.delta") == 2 and types[-1] == "response.completed"
        assert final.output_text == "Hello there "
    body = json.loads(json.dumps(resp.model_dump()))
    assert body["output"][0]["role"] == "assistant"


def test_engine_failure_mid_stream_reaches_the_sdk_as_error_then_failed() -> None:
    from slmnode.engine.client import Event, Started, Token
    from slmnode.errors import EngineCrashed
    from tests.unit.test_app_fake_engine import make

    client, eng = make()
    eng.release.set()
    working = eng.generate

    async def crash(prompt: str, params: GenerationParams) -> AsyncIterator[Event]:
        yield Started(7, 0)
        yield Token("Hel")
        raise EngineCrashed("the engine worker died")

    with client:
        sdk = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=client, max_retries=0)
        eng.generate = crash  # type: ignore[method-assign]
        events = list(sdk.responses.create(model="fake:1", input="hi", stream=True))
        assert [e.type for e in events][-3:] == ["response.output_text.delta", "error", "response.failed"]
        err, failed = events[-2], events[-1]
        assert err.type == "error" and err.code == "engine_crashed"
        assert failed.type == "response.failed" and failed.response.status == "failed"
        eng.generate = working  # type: ignore[method-assign]
        assert sdk.responses.create(model="fake:1", input="hi").status == "completed"
