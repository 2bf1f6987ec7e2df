"""Run one agent job against an endpoint: tool call, tool result fed back, tool call, final answer under
``response_format`` json_schema; every step validated and timed. ``protocol`` picks the wire format the
agent speaks (OpenAI chat completions, Anthropic Messages, OpenAI Responses: :mod:`slmnode.bench.protocols`)."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from slmnode.bench.agent_jobs import AgentJob, Json, system_prompt, validate_answer, validate_tool_call
from slmnode.bench.client import BenchClient, CallResult
from slmnode.bench.protocols import WireProtocol
from slmnode.bench.results import JobRun, StepRecord
from slmnode.errors import BenchError

ToolChoice = Literal["forced", "auto"]
STEP_MAX_TOKENS = 200


def _processed(call: CallResult) -> int | None:
    t = call.timings or {}
    return int(t["prompt_n"]) if "prompt_n" in t else None


def _step(kind: Literal["tool", "final"], name: str, call: CallResult, problems: list[str]) -> StepRecord:
    return StepRecord(kind=kind, name=name, wall_s=call.wall_s, prompt_tokens=call.prompt_tokens,
                      prompt_processed=_processed(call), completion_tokens=call.completion_tokens,
                      valid=not problems, problems=problems)


def run_job(client: BenchClient, job: AgentJob, *, tool_choice: ToolChoice = "forced",
            system: str | None = None, protocol: WireProtocol = "openai") -> JobRun:
    """One run of ``job``. A step whose output is invalid ends the run (its tool cannot be called)."""
    messages: list[Json] = [{"role": "system", "content": system or system_prompt()},
                            {"role": "user", "content": job.task}]
    tools = [t.openai() for t in job.tools]
    steps: list[StepRecord] = []
    results: list[Json] = []
    t0 = time.perf_counter()

    def done(valid: bool, correct: bool, problems: list[str]) -> JobRun:
        return JobRun(wall_s=time.perf_counter() - t0, steps=steps, valid=valid, correct=correct, problems=problems)

    for i, tool_name in enumerate(job.plan):
        choice: Any = {"type": "function", "function": {"name": tool_name}} if tool_choice == "forced" else "auto"
        try:
            call = client.chat(messages, protocol=protocol, tools=tools, tool_choice=choice, temperature=0,
                               seed=job.seed + i, max_tokens=STEP_MAX_TOKENS)
        except BenchError as exc:
            return done(False, False, [f"step {i + 1} ({tool_name}): {exc.message}"])
        message = ((call.body.get("choices") or [{}])[0]).get("message") or {}
        args, problems = validate_tool_call(job, i, message)
        steps.append(_step("tool", tool_name, call, problems))
        if args is None:
            return done(False, False, problems)
        result = job.tool(tool_name).run(args)
        results.append(result)
        call_id = (message.get("tool_calls") or [{}])[0].get("id") or f"call_{i}"
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": tool_name, "arguments": json.dumps(args)}}]})
        messages.append({"role": "tool", "tool_call_id": call_id, "name": tool_name,
                         "content": json.dumps(result, ensure_ascii=False)})

    messages.append({"role": "user", "content": "Now give the final answer as one JSON object."})
    fmt = {"type": "json_schema", "json_schema": {"name": f"{job.name}_answer", "strict": True,
                                                  "schema": job.answer_schema}}
    try:
        call = client.chat(messages, protocol=protocol, response_format=fmt, temperature=0,
                           seed=job.seed + len(job.plan), max_tokens=STEP_MAX_TOKENS)
    except BenchError as exc:
        return done(False, False, [f"final answer: {exc.message}"])
    content = (((call.body.get("choices") or [{}])[0]).get("message") or {}).get("content")
    _answer, schema_problems, wrong = validate_answer(job, content, results)
    steps.append(_step("final", "final", call, schema_problems))
    return done(not schema_problems, not schema_problems and not wrong, schema_problems + wrong)
