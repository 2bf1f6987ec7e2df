"""The agent jobs' validators accept right outputs and reject wrong ones; tools are deterministic."""

from __future__ import annotations

import json
from typing import Any

import pytest

from slmnode.bench.agent_jobs import JOBS, system_prompt, validate_answer, validate_tool_call

# A correct run of each job: (step-1 args, step-2 args), and a builder of the final answer from the tool results.
GOOD_ARGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "triage": ({"email": "m.keller@example.org"},
               {"customer_id": "C-20417", "category": "outage", "priority": "urgent", "summary": "Heat pump HP-9 error E41, no heating"}),
    "extract": ({"vendor_name": "Nordic Heat Components AB"},
                {"amount": 8381.25, "from_currency": "SEK", "date": "2024-09-17"}),
    "calendar": ({"date": "2024-10-16", "duration_minutes": 45},
                 {"title": "Q4 budget review", "date": "2024-10-16", "start": "11:30", "duration_minutes": 45,
                  "attendees": ["Jonas Berg", "Anna Weiss"]}),
}


def good_answer(job: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    if job == "triage":
        return {"ticket_id": results[1]["ticket_id"], "category": "outage", "priority": "urgent",
                "reply": f"We received your message, ticket {results[1]['ticket_id']}."}
    if job == "extract":
        return {"vendor_id": results[0]["vendor_id"], "invoice_number": "NHC-2024-0917", "invoice_date": "2024-09-17",
                "total_eur": results[1]["amount_eur"], "payment_term_days": 30}
    return {"event_id": results[1]["event_id"], "date": "2024-10-16", "start": results[1]["start"],
            "confirmation": "Booked Wednesday 2024-10-16 at 11:30 in Harbour."}


def call(name: str, args: Any) -> dict[str, Any]:
    text = args if isinstance(args, str) else json.dumps(args)
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": name, "arguments": text}}]}


def run_tools(job_name: str) -> list[dict[str, Any]]:
    job = JOBS[job_name]
    return [job.tool(job.plan[i]).run(GOOD_ARGS[job_name][i]) for i in range(2)]


@pytest.mark.parametrize("name", list(JOBS))
def test_a_correct_run_is_valid_and_correct(name: str) -> None:
    job = JOBS[name]
    for i in range(2):
        args, problems = validate_tool_call(job, i, call(job.plan[i], GOOD_ARGS[name][i]))
        assert problems == [] and args == GOOD_ARGS[name][i]
    results = run_tools(name)
    answer, schema_problems, wrong = validate_answer(job, json.dumps(good_answer(name, results)), results)
    assert (schema_problems, wrong) == ([], [])
    assert answer is not None


@pytest.mark.parametrize(("name", "step", "message", "expect"), [
    ("triage", 0, {"role": "assistant", "content": "I will look up the customer."}, "got text"),
    ("triage", 0, call("create_ticket", {"email": "a@b.c"}), "expected a call of lookup_customer"),
    ("triage", 0, call("lookup_customer", {"email": "Not An Email"}), "does not match"),
    ("triage", 0, call("lookup_customer", {"email": "a@b.c", "extra": 1}), "Additional properties"),
    ("triage", 1, call("create_ticket", {"customer_id": "C-20417", "category": "urgent!", "priority": "high",
                                         "summary": "Heat pump down"}), "is not one of"),
    ("extract", 1, call("convert_currency", {"amount": "8381.25", "from_currency": "SEK", "date": "2024-09-17"}),
     "is not of type 'number'"),
    ("calendar", 0, call("get_free_slots", '{"date": "2024-10-16", '), "not JSON"),
    ("calendar", 1, call("create_event", {"title": "x", "date": "2024-10-16", "start": "11:30",
                                          "duration_minutes": 45, "attendees": []}), "should be non-empty"),
])
def test_tool_call_validator_rejects_wrong_calls(name: str, step: int, message: dict[str, Any], expect: str) -> None:
    args, problems = validate_tool_call(JOBS[name], step, message)
    assert args is None
    assert any(expect in p for p in problems), problems


@pytest.mark.parametrize("name", list(JOBS))
def test_answer_validator_rejects_non_json_and_schema_violations(name: str) -> None:
    job, results = JOBS[name], run_tools(name)
    _, problems, _ = validate_answer(job, "Sure! Here is the answer.", results)
    assert problems and "not JSON" in problems[0]
    bad = {**good_answer(name, results), "unexpected": True}
    _, problems, _ = validate_answer(job, json.dumps(bad), results)
    assert problems and "Additional properties" in problems[0]
    missing = good_answer(name, results)
    missing.pop(next(iter(missing)))
    _, problems, _ = validate_answer(job, json.dumps(missing), results)
    assert problems and "required" in problems[0]


@pytest.mark.parametrize(("name", "field", "wrong_value", "expect"), [
    ("triage", "ticket_id", "T-0000", "is not the created ticket"),
    ("extract", "vendor_id", "V-0001", "is not the looked-up"),
    ("extract", "total_eur", 8381.25, "is not the converted"),  # the SEK amount, not converted
    ("calendar", "event_id", "E-00000", "is not the booked"),
])
def test_answer_validator_flags_schema_valid_but_wrong_answers(name: str, field: str, wrong_value: Any, expect: str) -> None:
    job, results = JOBS[name], run_tools(name)
    answer = {**good_answer(name, results), field: wrong_value}
    parsed, schema_problems, wrong = validate_answer(job, json.dumps(answer), results)
    assert schema_problems == [] and parsed == answer
    assert any(expect in w for w in wrong), wrong


def test_tools_are_deterministic_and_know_the_fixtures() -> None:
    assert run_tools("triage") == run_tools("triage")
    assert run_tools("triage")[0]["customer_id"] == "C-20417"
    assert run_tools("extract")[1]["amount_eur"] == round(8381.25 * 0.0874, 2)
    assert JOBS["triage"].tool("lookup_customer").run({"email": "x@y.z"})["found"] is False
    assert run_tools("calendar")[0]["free"] == JOBS["calendar"].tool("get_free_slots").run(GOOD_ARGS["calendar"][0])["free"]


def test_calendar_check_rejects_a_booking_outside_the_free_slots() -> None:
    job = JOBS["calendar"]
    results = run_tools("calendar")
    booked = job.tool("create_event").run({**GOOD_ARGS["calendar"][1], "start": "03:00"})
    answer = good_answer("calendar", [results[0], booked])
    _, _, wrong = validate_answer(job, json.dumps(answer), [results[0], booked])
    assert any("not one of the free slots" in w for w in wrong)


def test_system_prompt_is_about_a_thousand_tokens_and_tools_are_valid_openai_tools() -> None:
    words = len(system_prompt().split())
    assert 700 <= words <= 1100  # ~1.2-1.3 tokens per word on Gemma's tokenizer
    for job in JOBS.values():
        assert len(job.plan) == 2 and all(job.tool(n) for n in job.plan)
        for tool in job.tools:
            spec = tool.openai()
            assert spec["type"] == "function" and spec["function"]["parameters"]["type"] == "object"
