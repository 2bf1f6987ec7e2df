"""The real ``openai`` client against a real node serving the embedded model."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from slmnode.catalog.embedded import GEMMA3
from tests.conftest import RunningNode

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(node: RunningNode) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{node.base_url}/v1", api_key="unused", max_retries=0, timeout=600)


def test_models_list_names_the_embedded_models(client: openai.OpenAI, node: RunningNode) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == [node.model, GEMMA3.name]  # the served default first


def test_chat_completion_answers_with_usage_and_timings(client: openai.OpenAI, node: RunningNode) -> None:
    r = client.chat.completions.create(
        model=node.model, max_tokens=16, temperature=0, seed=1,
        messages=[{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "What colour is the sky on a clear day?"}])
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 16
    assert r.usage.prompt_tokens > 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    timings = r.model_extra["timings"]
    assert timings["predicted_n"] == r.usage.completion_tokens
    assert timings["prompt_per_second"] > 0


def test_greedy_is_deterministic(client: openai.OpenAI, node: RunningNode) -> None:
    msgs = [{"role": "user", "content": "Count: one, two, three,"}]
    a = client.chat.completions.create(model=node.model, messages=msgs, max_tokens=12, temperature=0)
    b = client.chat.completions.create(model=node.model, messages=msgs, max_tokens=12, temperature=0)
    assert a.choices[0].message.content == b.choices[0].message.content
    # the second identical prompt reuses the cached prefix
    assert b.usage.prompt_tokens_details.cached_tokens >= b.usage.prompt_tokens - 1


def test_stop_sequence_ends_the_answer(client: openai.OpenAI, node: RunningNode) -> None:
    r = client.completions.create(model=node.model, prompt="1, 2, 3, 4, 5, 6,", max_tokens=30,
                                  temperature=0, stop=[" 9"])
    assert " 9" not in r.choices[0].text
    assert r.choices[0].finish_reason == "stop"


def test_chat_stream_yields_deltas_then_finish_and_usage(client: openai.OpenAI, node: RunningNode) -> None:
    stream = client.chat.completions.create(
        model=node.model, max_tokens=20, temperature=0, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Write a sentence about rivers."}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text.strip()
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2  # really streamed


def test_completions_endpoint(client: openai.OpenAI, node: RunningNode) -> None:
    r = client.completions.create(model=node.model, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text.strip()
    assert r.usage.completion_tokens <= 8


SCHEMAS = {
    "nested_object": {
        "type": "object",
        "properties": {
            "person": {"type": "object", "properties": {
                "name": {"type": "string", "maxLength": 24},
                "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                                             "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                            "required": ["city", "zip"]}},
                "required": ["name", "address"]}},
        "required": ["person"],
    },
    "enum": {
        "type": "object",
        "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]},
                       "priority": {"type": "string", "enum": ["low", "medium", "high"]}},
        "required": ["sentiment", "priority"],
    },
    "array": {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string", "maxLength": 12},
                                "minItems": 1, "maxItems": 4}},
        "required": ["tags"],
    },
    "required_and_optional": {
        "type": "object",
        "properties": {"title": {"type": "string", "maxLength": 30}, "done": {"type": "boolean"},
                       "note": {"type": "string", "maxLength": 20}},
        "required": ["title", "done"],
    },
    "bounded_numbers": {
        "type": "object",
        "properties": {"age": {"type": "integer", "minimum": 18, "maximum": 99},
                       "score": {"type": "number", "minimum": 0, "maximum": 1},
                       "temperature_c": {"type": "number", "minimum": -40, "maximum": 60},
                       "count": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}},
        "required": ["age", "score", "temperature_c", "count"],
    },
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@pytest.mark.parametrize("seed", [1, 2])
def test_json_schema_output_always_validates(client: openai.OpenAI, node: RunningNode, name: str, seed: int) -> None:
    schema = SCHEMAS[name]
    r = client.chat.completions.create(
        model=node.model, max_tokens=160, temperature=0.9, seed=seed,
        messages=[{"role": "user", "content": f"Produce a {name.replace('_', ' ')} record as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}})
    assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_object_mode_returns_an_object(client: openai.OpenAI, node: RunningNode, seed: int) -> None:
    """Any object is allowed, so it may run into max_tokens (then it is cut); if it stops, it parses."""
    r = client.chat.completions.create(
        model=node.model, max_tokens=48, temperature=0.8, seed=seed, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": 'Return {"ok": true} as JSON.'}])
    text, finish = r.choices[0].message.content, r.choices[0].finish_reason
    assert text.lstrip().startswith("{")
    if finish == "stop":
        assert isinstance(json.loads(text), dict)
    else:
        assert finish == "length"


TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "maxLength": 30},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}},
    {"type": "function", "function": {
        "name": "create_event", "description": "Put an event in the calendar",
        "parameters": {"type": "object", "properties": {
            "title": {"type": "string", "maxLength": 40},
            "day": {"type": "integer", "minimum": 1, "maximum": 31},
            "attendees": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3}},
            "required": ["title", "day", "attendees"]}}},
    {"type": "function", "function": {
        "name": "triage_ticket", "description": "Classify a support ticket",
        "parameters": {"type": "object", "properties": {
            "category": {"enum": ["billing", "bug", "feature", "other"]},
            "urgent": {"type": "boolean"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
            "required": ["category", "urgent", "confidence"]}}},
]


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t["function"]["name"])
def test_forced_tool_call_arguments_validate(client: openai.OpenAI, node: RunningNode, tool: dict) -> None:
    fn = tool["function"]
    r = client.chat.completions.create(
        model=node.model, max_tokens=120, temperature=0.7, seed=3, tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": fn["name"]}},
        messages=[{"role": "user", "content": "My invoice is wrong and I need the weather in Oslo and a meeting on the 3rd."}])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == fn["name"] and call.id
    jsonschema.validate(json.loads(call.function.arguments), fn["parameters"])


def test_required_tool_choice_picks_a_valid_tool(client: openai.OpenAI, node: RunningNode) -> None:
    r = client.chat.completions.create(
        model=node.model, max_tokens=120, temperature=0, tools=TOOLS, tool_choice="required",
        messages=[{"role": "user", "content": "What is the weather in Paris in celsius?"}])
    (call,) = r.choices[0].message.tool_calls
    fn = next(t["function"] for t in TOOLS if t["function"]["name"] == call.function.name)
    jsonschema.validate(json.loads(call.function.arguments), fn["parameters"])


def test_tool_cycle_continues_after_tool_result(client: openai.OpenAI, node: RunningNode) -> None:
    """An assistant turn with tool_calls and null content, then a tool result: no 500, a second step."""
    msgs: list[dict] = [{"role": "system", "content": "You are a calendar agent."},
                        {"role": "user", "content": "Check the weather in Oslo, then book a picnic."}]
    first = client.chat.completions.create(
        model=node.model, messages=msgs, max_tokens=80, temperature=0, tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = first.choices[0].message.tool_calls[0]
    msgs.append(first.choices[0].message.model_dump(exclude_none=True))
    msgs.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21, "sky": "clear"})})
    second = client.chat.completions.create(
        model=node.model, messages=msgs, max_tokens=100, temperature=0, tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "create_event"}})
    args = json.loads(second.choices[0].message.tool_calls[0].function.arguments)
    jsonschema.validate(args, TOOLS[1]["function"]["parameters"])
    msgs.append(second.choices[0].message.model_dump(exclude_none=True))
    msgs.append({"role": "tool", "tool_call_id": second.choices[0].message.tool_calls[0].id, "content": '{"ok": true}'})
    final = client.chat.completions.create(model=node.model, messages=msgs, max_tokens=20, temperature=0, tools=TOOLS)
    assert final.choices[0].finish_reason in ("stop", "length")
    assert final.usage.prompt_tokens > second.usage.prompt_tokens
