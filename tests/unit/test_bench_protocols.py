"""The bench's agent call in each wire format: chat completions messages → Anthropic / Responses bodies, and
their answers back to a chat completions message (what the agent runner validates)."""

from __future__ import annotations

import json
from typing import Any

from slmnode.bench.protocols import answer, request

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be an agent."},
    {"role": "user", "content": "Triage it."},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"id": "A1"}'}}]},
    {"role": "tool", "tool_call_id": "c1", "name": "lookup", "content": '{"tier": "gold"}'},
    {"role": "user", "content": "Now answer."},
]
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}}}]
FORCED = {"type": "function", "function": {"name": "lookup"}}
FMT = {"type": "json_schema", "json_schema": {"name": "a", "strict": True, "schema": {"type": "object"}}}


def test_anthropic_body_keeps_the_tool_loop() -> None:
    path, body = request("anthropic", MESSAGES, {"tools": TOOLS, "tool_choice": FORCED, "temperature": 0,
                                                 "max_tokens": 50, "response_format": FMT})
    assert path == "/v1/messages" and body["system"] == "Be an agent." and body["max_tokens"] == 50
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Triage it."}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "lookup", "input": {"id": "A1"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": '{"tier": "gold"}'},
                                     {"type": "text", "text": "Now answer."}]}]
    assert body["tools"] == [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "tool", "name": "lookup"}
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": {"type": "object"}}}


def test_responses_body_keeps_the_tool_loop() -> None:
    path, body = request("responses", MESSAGES, {"tools": TOOLS, "tool_choice": FORCED, "seed": 3,
                                                 "max_tokens": 50, "response_format": FMT})
    assert path == "/v1/responses" and body["instructions"] == "Be an agent." and body["max_output_tokens"] == 50
    assert body["input"] == [
        {"type": "message", "role": "user", "content": "Triage it."},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"id": "A1"}'},
        {"type": "function_call_output", "call_id": "c1", "output": '{"tier": "gold"}'},
        {"type": "message", "role": "user", "content": "Now answer."}]
    assert body["tool_choice"] == {"type": "function", "name": "lookup"} and body["seed"] == 3
    assert body["text"]["format"]["schema"] == {"type": "object"} and body["store"] is False


def test_answers_come_back_as_chat_completion_messages() -> None:
    msg, prompt, completion, timings = answer("anthropic", {
        "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"id": "A1"}}],
        "usage": {"input_tokens": 5, "cache_read_input_tokens": 20, "output_tokens": 7}})
    assert msg["tool_calls"][0]["function"] == {"name": "lookup", "arguments": json.dumps({"id": "A1"})}
    assert (prompt, completion, timings) == (25, 7, {"prompt_n": 5})
    msg, prompt, completion, timings = answer("responses", {
        "output": [{"type": "message", "content": [{"type": "output_text", "text": '{"ok": true}'}]}],
        "usage": {"input_tokens": 30, "output_tokens": 4, "input_tokens_details": {"cached_tokens": 10}}})
    assert msg == {"role": "assistant", "content": '{"ok": true}'}
    assert (prompt, completion, timings) == (30, 4, {"prompt_n": 20})
