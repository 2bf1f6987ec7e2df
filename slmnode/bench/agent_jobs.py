"""Three fixed, seeded, multi-step agent jobs: what an agent asks of a small model, step by step.

Each job: the ~1k-token system prompt (``data/agent_system_prompt.md``), a task message, two tool
calls (each one's JSON arguments validated against the tool's schema; deterministic tool
implementations whose results are fed back) and a final answer validated against a JSON schema.
"valid" = every step's output matched its schema; "correct" = the final answer also carries the
values the tools returned (ids, amounts, slots), which a schema alone cannot enforce.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema

Json = dict[str, Any]


@functools.cache
def system_prompt() -> str:
    return resources.files("slmnode.bench").joinpath("data/agent_system_prompt.md").read_text(encoding="utf-8")


def _digits(*parts: Any, n: int = 4) -> str:
    """Deterministic digits from the arguments (same call -> same id, on every machine)."""
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return str(int(h, 16) % 10**n).zfill(n)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: Json
    run: Callable[[Json], Json]

    def openai(self) -> Json:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}


@dataclass(frozen=True)
class AgentJob:
    name: str
    title: str
    task: str
    tools: tuple[Tool, ...]
    plan: tuple[str, ...]  # the tool each step calls, in order
    answer_schema: Json
    check: Callable[[Json, list[Json]], list[str]]  # (final answer, tool results) -> what disagrees
    seed: int = 42

    def tool(self, name: str) -> Tool:
        return next(t for t in self.tools if t.name == name)


# ---- triage: an incoming customer message --------------------------------------------------------

_CUSTOMERS = {"m.keller@example.org": {"customer_id": "C-20417", "name": "Miriam Keller", "plan": "Premium",
                                       "devices": ["heat pump HP-9", "inverter SX-5"]}}
_RESPONSE_TIME = {"Premium": "4 office hours", "Plus": "1 office day", "Basic": "3 office days"}


def _lookup_customer(args: Json) -> Json:
    email = args["email"].lower()
    if email in _CUSTOMERS:
        return {"found": True, **_CUSTOMERS[email]}
    return {"found": False, "customer_id": f"C-{_digits(email, n=5)}", "plan": "Basic", "devices": []}


def _create_ticket(args: Json) -> Json:
    plan = next((c["plan"] for c in _CUSTOMERS.values() if c["customer_id"] == args["customer_id"]), "Basic")
    return {"ticket_id": f"T-{_digits(args['customer_id'], args['category'], args['priority'])}",
            "response_time": _RESPONSE_TIME[str(plan)]}


_TRIAGE_TOOLS = (
    Tool("lookup_customer", "Find a customer by e-mail address; returns customer_id, plan and devices.",
         {"type": "object", "properties": {"email": {"type": "string", "pattern": "^[a-z0-9._-]+@[a-z0-9.-]+$",
                                                     "maxLength": 60}},
          "required": ["email"], "additionalProperties": False}, _lookup_customer),
    Tool("create_ticket", "Open a support ticket; returns ticket_id and the response time of the plan.",
         {"type": "object", "properties": {
             "customer_id": {"type": "string", "pattern": "^C-[0-9]{5}$"},
             "category": {"enum": ["billing", "outage", "maintenance", "sales", "other"]},
             "priority": {"enum": ["low", "normal", "high", "urgent"]},
             "summary": {"type": "string", "minLength": 5, "maxLength": 80}},
          "required": ["customer_id", "category", "priority", "summary"], "additionalProperties": False},
         _create_ticket),
)

_TRIAGE_ANSWER = {"type": "object", "properties": {
    "ticket_id": {"type": "string", "pattern": "^T-[0-9]{4}$"},
    "category": {"enum": ["billing", "outage", "maintenance", "sales", "other"]},
    "priority": {"enum": ["low", "normal", "high", "urgent"]},
    "reply": {"type": "string", "minLength": 10, "maxLength": 200}},
    "required": ["ticket_id", "category", "priority", "reply"], "additionalProperties": False}


def _check_triage(answer: Json, results: list[Json]) -> list[str]:
    problems = []
    if answer.get("ticket_id") != results[1].get("ticket_id"):
        problems.append(f"ticket_id {answer.get('ticket_id')!r} is not the created ticket {results[1].get('ticket_id')!r}")
    return problems


TRIAGE = AgentJob(
    name="triage", title="Triage an incoming customer message",
    task=("Job: triage this message from the support inbox.\n\nFrom: m.keller@example.org\n"
          "Subject: heat pump error E41, house is cold\n\nHello, since this morning our heat pump HP-9 shows "
          "error E41 and the radiators are cold. It is 2 degrees outside. I restarted it twice. What should "
          "I do? Miriam Keller\n\nFirst look up the customer, then open a ticket, then answer."),
    tools=_TRIAGE_TOOLS, plan=("lookup_customer", "create_ticket"), answer_schema=_TRIAGE_ANSWER,
    check=_check_triage, seed=11)

# ---- extract: fields from a supplier invoice -----------------------------------------------------

_VENDORS = {"nordic heat components ab": {"vendor_id": "V-3381", "country": "SE", "currency": "SEK"}}
_RATES = {"SEK": 0.0874, "USD": 0.9215, "GBP": 1.1690, "CHF": 1.0412, "EUR": 1.0}


def _lookup_vendor(args: Json) -> Json:
    key = args["vendor_name"].strip().lower()
    if key in _VENDORS:
        return {"found": True, **_VENDORS[key]}
    return {"found": False, "vendor_id": f"V-{_digits(key)}", "country": "unknown", "currency": "EUR"}


def _convert_currency(args: Json) -> Json:
    rate = _RATES[args["from_currency"]]
    return {"amount_eur": round(args["amount"] * rate, 2), "rate": rate, "date": args["date"]}


_EXTRACT_TOOLS = (
    Tool("lookup_vendor", "Find a supplier by its name as printed; returns vendor_id, country and currency.",
         {"type": "object", "properties": {"vendor_name": {"type": "string", "minLength": 2, "maxLength": 60}},
          "required": ["vendor_name"], "additionalProperties": False}, _lookup_vendor),
    Tool("convert_currency", "Convert an amount to euros at the rate of the given date.",
         {"type": "object", "properties": {
             "amount": {"type": "number", "minimum": 0, "maximum": 10000000},
             "from_currency": {"enum": sorted(_RATES)},
             "date": {"type": "string", "pattern": "^20[0-9]{2}-[01][0-9]-[0-3][0-9]$"}},
          "required": ["amount", "from_currency", "date"], "additionalProperties": False}, _convert_currency),
)

_EXTRACT_ANSWER = {"type": "object", "properties": {
    "vendor_id": {"type": "string", "pattern": "^V-[0-9]{4}$"},
    "invoice_number": {"type": "string", "minLength": 3, "maxLength": 30},
    "invoice_date": {"type": "string", "pattern": "^20[0-9]{2}-[01][0-9]-[0-3][0-9]$"},
    "total_eur": {"type": "number", "minimum": 0, "maximum": 10000000},
    "payment_term_days": {"type": "integer", "minimum": 0, "maximum": 120}},
    "required": ["vendor_id", "invoice_number", "invoice_date", "total_eur", "payment_term_days"],
    "additionalProperties": False}


def _check_extract(answer: Json, results: list[Json]) -> list[str]:
    problems = []
    if answer.get("vendor_id") != results[0].get("vendor_id"):
        problems.append(f"vendor_id {answer.get('vendor_id')!r} is not the looked-up {results[0].get('vendor_id')!r}")
    total = answer.get("total_eur")
    if not isinstance(total, (int, float)) or abs(total - results[1].get("amount_eur", -1)) > 0.005:
        problems.append(f"total_eur {total!r} is not the converted {results[1].get('amount_eur')!r}")
    return problems


EXTRACT = AgentJob(
    name="extract", title="Extract fields from a supplier invoice",
    task=("Job: extract the fields of this supplier document.\n\n--- document ---\nNordic Heat Components AB\n"
          "Industrivägen 14, 602 23 Norrköping, Sweden\n\nINVOICE  No. NHC-2024-0917\nInvoice date: 2024-09-17\n"
          "Customer: Northwind Field Services GmbH\n\n  12 x compressor mount kit CMK-2     4 320.00 SEK\n"
          "   3 x refrigerant sensor RS-40         2 385.00 SEK\n  Subtotal                             6 705.00 SEK\n"
          "  VAT 25 %                             1 676.25 SEK\n  TOTAL                                8 381.25 SEK\n\n"
          "Payment term: 30 days net.\n--- end ---\n\nFirst look up the vendor, then convert the total to euros, "
          "then answer."),
    tools=_EXTRACT_TOOLS, plan=("lookup_vendor", "convert_currency"), answer_schema=_EXTRACT_ANSWER,
    check=_check_extract, seed=22)

# ---- calendar: plan a meeting --------------------------------------------------------------------


def _free_slots(args: Json) -> Json:
    offset = int(_digits(args["date"], n=2)) % 3  # same day -> same slots
    starts = [f"{h:02d}:{m:02d}" for h, m in [(9 + offset, 0), (11, 30), (14, 0 + 15 * offset), (15, 30)]]
    return {"date": args["date"], "duration_minutes": args["duration_minutes"], "free": starts}


def _create_event(args: Json) -> Json:
    return {"event_id": f"E-{_digits(args['date'], args['start'], args['title'], n=5)}", "room": "Harbour",
            "date": args["date"], "start": args["start"]}


_CALENDAR_TOOLS = (
    Tool("get_free_slots", "List the free start times on a day for a meeting of the given length.",
         {"type": "object", "properties": {
             "date": {"type": "string", "pattern": "^20[0-9]{2}-[01][0-9]-[0-3][0-9]$"},
             "duration_minutes": {"type": "integer", "minimum": 15, "maximum": 240}},
          "required": ["date", "duration_minutes"], "additionalProperties": False}, _free_slots),
    Tool("create_event", "Book a meeting; returns event_id and room.",
         {"type": "object", "properties": {
             "title": {"type": "string", "minLength": 3, "maxLength": 60},
             "date": {"type": "string", "pattern": "^20[0-9]{2}-[01][0-9]-[0-3][0-9]$"},
             "start": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
             "duration_minutes": {"type": "integer", "minimum": 15, "maximum": 240},
             "attendees": {"type": "array", "items": {"type": "string", "maxLength": 40}, "minItems": 1, "maxItems": 5}},
          "required": ["title", "date", "start", "duration_minutes", "attendees"], "additionalProperties": False},
         _create_event),
)

_CALENDAR_ANSWER = {"type": "object", "properties": {
    "event_id": {"type": "string", "pattern": "^E-[0-9]{5}$"},
    "date": {"type": "string", "pattern": "^20[0-9]{2}-[01][0-9]-[0-3][0-9]$"},
    "start": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
    "confirmation": {"type": "string", "minLength": 10, "maxLength": 160}},
    "required": ["event_id", "date", "start", "confirmation"], "additionalProperties": False}


def _check_calendar(answer: Json, results: list[Json]) -> list[str]:
    problems = []
    if answer.get("event_id") != results[1].get("event_id"):
        problems.append(f"event_id {answer.get('event_id')!r} is not the booked {results[1].get('event_id')!r}")
    if results[1].get("start") not in results[0].get("free", []):
        problems.append(f"booked start {results[1].get('start')!r} is not one of the free slots {results[0].get('free')}")
    return problems


CALENDAR = AgentJob(
    name="calendar", title="Plan a calendar entry from a request",
    task=("Job: plan the meeting requested in this message. Today is Monday 2024-10-14.\n\n"
          "From: jonas.berg@northwind.example\nSubject: Q4 budget review\n\nHi Relay, please book 45 minutes with "
          "me and Anna Weiss on Wednesday 2024-10-16 to review the Q4 budget for the battery installations. "
          "Any time that day works. Thanks, Jonas\n\nFirst get the free slots, then book the meeting, then answer."),
    tools=_CALENDAR_TOOLS, plan=("get_free_slots", "create_event"), answer_schema=_CALENDAR_ANSWER,
    check=_check_calendar, seed=33)

JOBS: dict[str, AgentJob] = {j.name: j for j in (TRIAGE, EXTRACT, CALENDAR)}


# ---- validators ------------------------------------------------------------------------------------


def _schema_problems(value: Any, schema: Json, where: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{where}: {e.message}" for e in sorted(validator.iter_errors(value), key=str)][:3]


def validate_tool_call(job: AgentJob, step: int, message: Json) -> tuple[Json | None, list[str]]:
    """The parsed arguments of the step's tool call, and what is wrong with it (empty: valid)."""
    expected = job.plan[step]
    calls = message.get("tool_calls") or []
    if not calls:
        content = (message.get("content") or "")[:80]
        return None, [f"step {step + 1}: expected a call of {expected}, got text {content!r}"]
    fn = calls[0].get("function") or {}
    if fn.get("name") != expected:
        return None, [f"step {step + 1}: expected a call of {expected}, got {fn.get('name')!r}"]
    raw = fn.get("arguments")
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None, [f"step {step + 1}: {expected} arguments are not JSON: {str(raw)[:80]!r}"]
    if not isinstance(args, dict):
        return None, [f"step {step + 1}: {expected} arguments must be a JSON object"]
    problems = _schema_problems(args, job.tool(expected).parameters, f"step {step + 1} {expected}")
    return (args if not problems else None), problems


def validate_answer(job: AgentJob, content: str | None, results: list[Json]) -> tuple[Json | None, list[str], list[str]]:
    """(parsed answer, schema problems, correctness problems) for the final answer text."""
    try:
        answer = json.loads(content or "")
    except ValueError:
        return None, [f"final answer is not JSON: {(content or '')[:80]!r}"], []
    problems = _schema_problems(answer, job.answer_schema, "final answer")
    if problems:
        return None, problems, []
    return answer, [], job.check(answer, results)
