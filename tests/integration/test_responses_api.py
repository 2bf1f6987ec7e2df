"""The real ``openai`` client's Responses API against a real node serving the embedded model (a base model:
assertions are on structure, schema validity and usage, never on wording)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai.types.responses import ResponseFunctionToolCall

from tests.conftest import RunningNode

pytestmark = pytest.mark.integration

WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {
               "city": {"type": "string", "maxLength": 30},
               "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}
EVENT = {"type": "function", "name": "create_event", "description": "Put an event in the calendar",
         "parameters": {"type": "object", "properties": {
             "title": {"type": "string", "maxLength": 40},
             "day": {"type": "integer", "minimum": 1, "maximum": 31}}, "required": ["title", "day"]}}
TOOLS: list[Any] = [WEATHER, EVENT]


@pytest.fixture(scope="module")
def client(node: RunningNode) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{node.base_url}/v1", api_key="unused", max_retries=0, timeout=600)


def _collapse(types: list[str]) -> list[str]:
    """Event types with runs of the same delta type shown once."""
    out: list[str] = []
    for t in types:
        if not (t.endswith(".delta") and out and out[-1] == t):
            out.append(t)
    return out


def _message_events(final: str) -> list[str]:
    return ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
            "response.output_text.delta", "response.output_text.done", "response.content_part.done",
            "response.output_item.done", final]


def test_plain_create_answers_with_a_message_and_usage(client: openai.OpenAI, node: RunningNode) -> None:
    r = client.responses.create(model=node.model, input="What colour is the sky on a clear day?",
                                max_output_tokens=16, temperature=0)
    assert r.object == "response" and r.id.startswith("resp_") and r.model == node.model
    (item,) = r.output
    assert item.type == "message" and item.role == "assistant"
    assert item.content[0].type == "output_text" and r.output_text == item.content[0].text
    assert r.usage is not None and 0 < r.usage.output_tokens <= 16 and r.usage.input_tokens > 5
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.usage.input_tokens_details.cached_tokens <= r.usage.input_tokens
    if r.usage.output_tokens == 16:
        assert (r.status, r.incomplete_details and r.incomplete_details.reason) == ("incomplete", "max_output_tokens")
    else:
        assert r.status == "completed"


def test_instructions_reach_the_prompt(client: openai.OpenAI, node: RunningNode) -> None:
    instructions = "You are a terse assistant who answers in one word."
    bare = client.responses.create(model=node.model, input="Hello.", max_output_tokens=4, temperature=0)
    told = client.responses.create(model=node.model, input="Hello.", max_output_tokens=4, temperature=0,
                                   instructions=instructions)
    as_system = client.responses.create(model=node.model, max_output_tokens=4, temperature=0,
                                        input=[{"role": "system", "content": instructions},
                                               {"role": "user", "content": "Hello."}])
    assert told.instructions == instructions
    assert bare.usage is not None and told.usage is not None and as_system.usage is not None
    # the instructions are the system turn (a template's default system prompt, SmolLM2's, gives way to them)
    assert told.usage.input_tokens == as_system.usage.input_tokens != bare.usage.input_tokens


def test_max_output_tokens_cut_is_incomplete(client: openai.OpenAI, node: RunningNode) -> None:
    r = client.responses.create(model=node.model, input="Count from one to fifty: one, two, three,",
                                max_output_tokens=3, temperature=0)
    assert r.usage is not None and r.usage.output_tokens == 3
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t["name"])
def test_forced_function_tool_gives_valid_arguments(client: openai.OpenAI, node: RunningNode, tool: Any) -> None:
    r = client.responses.create(model=node.model, tools=TOOLS, tool_choice={"type": "function", "name": tool["name"]},
                                input="I need the weather in Oslo and a meeting on the 3rd.",
                                max_output_tokens=120, temperature=0.7, extra_body={"seed": 3})
    (call,) = r.output
    assert call.type == "function_call" and call.name == tool["name"] and call.call_id and call.status == "completed"
    jsonschema.validate(json.loads(call.arguments), tool["parameters"])
    assert r.status == "completed"


def test_json_schema_text_format_validates(client: openai.OpenAI, node: RunningNode) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                               "age": {"type": "integer", "minimum": 0, "maximum": 120}},
              "required": ["name", "age"], "additionalProperties": False}
    r = client.responses.create(model=node.model, input="Invent a person.", max_output_tokens=80, temperature=0.8,
                                text={"format": {"type": "json_schema", "name": "person", "schema": schema,
                                                 "strict": True}}, extra_body={"seed": 5})
    jsonschema.validate(json.loads(r.output_text), schema)
    assert r.text is not None and r.text.format is not None and r.text.format.type == "json_schema"


def test_stream_event_sequence_for_text(client: openai.OpenAI, node: RunningNode) -> None:
    events = list(client.responses.create(model=node.model, input="Tell me about the sea.", max_output_tokens=12,
                                          temperature=0, stream=True))
    final = events[-1].response  # type: ignore[union-attr]
    assert _collapse([e.type for e in events]) == _message_events(
        "response.incomplete" if final.status == "incomplete" else "response.completed")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done")
    assert deltas == done.text == final.output_text
    assert final.usage is not None and 0 < final.usage.output_tokens <= 12


def test_stream_helper_final_response(client: openai.OpenAI, node: RunningNode) -> None:
    with client.responses.stream(model=node.model, input="Say something about trees.", max_output_tokens=10,
                                 temperature=0, instructions="Be brief.") as stream:
        types = [ev.type for ev in stream]
        final = stream.get_final_response() if types[-1] == "response.completed" else None
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-1] in ("response.completed", "response.incomplete")
    if final is not None:
        assert final.output[0].type == "message" and final.usage is not None


def test_stream_event_sequence_for_a_forced_call(client: openai.OpenAI, node: RunningNode) -> None:
    events = list(client.responses.create(model=node.model, tools=TOOLS, input="Weather in Rome please.",
                                          tool_choice={"type": "function", "name": "get_weather"},
                                          max_output_tokens=100, temperature=0, stream=True))
    assert _collapse([e.type for e in events]) == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert args == done.arguments
    jsonschema.validate(json.loads(args), WEATHER["parameters"])
    (item,) = events[-1].response.output  # type: ignore[union-attr]
    assert isinstance(item, ResponseFunctionToolCall)
    assert item.arguments == args and item.name == "get_weather"


def test_multi_step_tool_loop(client: openai.OpenAI, node: RunningNode) -> None:
    """function_call → function_call_output → the next step, twice, as an agent drives it."""
    items: list[Any] = [{"role": "user", "content": "Check the weather in Oslo, then book a picnic."}]
    first = client.responses.create(model=node.model, instructions="You are a calendar agent.", input=items,
                                    tools=TOOLS, tool_choice={"type": "function", "name": "get_weather"},
                                    max_output_tokens=80, temperature=0)
    (call,) = first.output
    assert call.type == "function_call"
    items += [call.model_dump(exclude_none=True),
              {"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"temp_c": 21})}]
    second = client.responses.create(model=node.model, instructions="You are a calendar agent.", input=items,
                                     tools=TOOLS, tool_choice="required", max_output_tokens=100, temperature=0)
    (call2,) = second.output
    assert call2.type == "function_call" and call2.call_id != call.call_id
    jsonschema.validate(json.loads(call2.arguments), next(t for t in TOOLS if t["name"] == call2.name)["parameters"])
    items += [call2.model_dump(exclude_none=True),
              {"type": "function_call_output", "call_id": call2.call_id, "output": '{"ok": true}'}]
    final = client.responses.create(model=node.model, instructions="You are a calendar agent.", input=items,
                                    tools=TOOLS, max_output_tokens=20, temperature=0)
    assert final.status in ("completed", "incomplete") and final.output
    assert first.usage is not None and second.usage is not None and final.usage is not None
    assert final.usage.input_tokens > second.usage.input_tokens > first.usage.input_tokens


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "hi", "previous_response_id": "resp_abc"}, "previous_response_id"),
    ({"input": "hi", "store": True}, "store"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input"),
    ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:,"}]}]}, "input"),
    ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({}, "input"),
])
def test_bad_input_is_400_in_openai_shape_and_the_node_keeps_serving(
        node: RunningNode, client: openai.OpenAI, body: dict[str, Any], param: str) -> None:
    r = httpx.post(f"{node.base_url}/v1/responses", json={"model": node.model, **body}, timeout=120)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["message"]
    ok = client.responses.create(model=node.model, input="Hi", max_output_tokens=2)
    assert ok.usage is not None and ok.usage.output_tokens >= 1


def test_sdk_raises_bad_request_for_previous_response_id(client: openai.OpenAI, node: RunningNode) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model=node.model, input="hi", previous_response_id="resp_abc")
    assert "stateless" in str(exc.value)


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi", stream=True)
