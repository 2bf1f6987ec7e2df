"""Which kind of task is a chat request? Rules on its shape and text, no model needed.

Local tasks: classification, extraction, formatting, summarization, routing (what a small model does
well, for the price of electricity). Cloud tasks: long multi-step reasoning, code, creative writing.
Anything else is ``unknown`` (the router's ``unknown_task`` setting, or the local model as classifier,
decides). Each rule that fires adds to its task's score; the best score wins, a tie is ``unknown``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

Task = Literal["classification", "extraction", "formatting", "summarization", "routing",
               "reasoning", "code", "creative", "unknown"]
LOCAL_TASKS: frozenset[str] = frozenset({"classification", "extraction", "formatting", "summarization", "routing"})
CLOUD_TASKS: frozenset[str] = frozenset({"reasoning", "code", "creative"})
TASKS: tuple[str, ...] = (*sorted(LOCAL_TASKS), *sorted(CLOUD_TASKS))

_W = r"(?:\s+[\w-]+){0,3}\s+"  # up to three words in between
_RULES: dict[str, list[str]] = {
    "classification": [
        r"\bclassif(?:y|ication)\b", r"\bcategori[sz]e\b", r"\bwhich category\b", r"\blabel(?:s|ing)?\b",
        r"\bsentiment\b", r"\bis (?:this|it)(?: \w+)? (?:spam|positive|negative|urgent|a complaint)\b",
        r"\bone of:", r"\banswer (?:only )?(?:with )?(?:yes or no|true or false)\b", r"\bdetect the language\b",
        r"\bintent\b",
    ],
    "extraction": [
        r"\bextract\b", r"\bpull out\b", r"\bfind all\b", r"\bparse\b",
        r"\blist (?:all |every )?(?:the )?(?:names|dates|emails|amounts|entities|people|items)\b",
        r"\bfill in\b", r"\bwhat is the (?:date|amount|total|order number|invoice number)\b",
    ],
    "formatting": [
        r"\bre-?format\b", r"\bconvert" + _W + r"(?:to|into) (?:json|yaml|csv|markdown|a table|xml)\b",
        r"\bas (?:json|yaml|csv|a markdown table|a bulleted list)\b", r"\bnormali[sz]e\b",
        r"\bfix (?:the )?(?:grammar|spelling|punctuation|typos)\b", r"\brewrite" + _W + r"as\b",
    ],
    "summarization": [
        r"\bsummari[sz](?:e|ing)\b", r"\bsummary\b", r"\btl;?dr\b", r"\bin one sentence\b", r"\bkey points\b",
        r"\bcondense\b", r"\bshorten\b", r"\bgist\b",
    ],
    "routing": [
        r"\broute\b", r"\bwhich (?:team|department|agent|tool|queue|person)\b", r"\bforward (?:it |this )?to\b",
        r"\bdispatch\b", r"\btriage\b", r"\bassign (?:it |this )?to\b", r"\bescalate\b",
    ],
    "code": [
        r"```", r"\bwrite (?:a |an |the )?(?:\w+ )?(?:function|script|program|class|method|module|unit tests?)\b",
        r"\bimplement\b", r"\brefactor\b", r"\bdebug\b", r"\bTraceback \(most recent call last\)",
        r"\bfix (?:this|the|my) (?:bug|code|error|exception|test)\b", r"\bregex\b", r"\bSQL (?:query|statement)\b",
        r"\b(?:python|javascript|typescript|rust|golang|java|c\+\+|bash) (?:code|script|function)\b",
        r"\bcompile[sr]? error\b", r"\bstack trace\b", r"\bcode review\b",
    ],
    "reasoning": [
        r"\bstep[- ]by[- ]step\b", r"\bprove\b", r"\bderive\b", r"\bexplain (?:why|how|in detail)\b",
        r"\banaly[sz]e" + _W + r"(?:in depth|thoroughly|in detail|trade-?offs)\b", r"\bcompare and contrast\b",
        r"\bpros and cons\b", r"\b(?:make|draft|write) a (?:detailed )?(?:plan|strategy|roadmap)\b",
        r"\bsolve\b", r"\bthink (?:carefully|hard|it through)\b", r"\bwhat would happen if\b", r"\bdesign an?\b",
        r"\bmulti-?step\b", r"\breason(?:ing)? about\b",
    ],
    "creative": [
        (r"\bwrite (?:me )?(?:a |an )?(?:short |funny |long )?(?:story|poem|song|essay|novel|screenplay|haiku|joke|"
         r"limerick|blog post|speech|toast|fairy tale)\b"),
        r"\bcreative\b", r"\bimagine\b", r"\bfiction(?:al)?\b", r"\bbrainstorm\b", r"\bslogans?\b", r"\btagline\b",
        r"\bcompose\b",
    ],
}
_COMPILED = {task: [re.compile(p, re.IGNORECASE) for p in pats] for task, pats in _RULES.items()}


@dataclass(frozen=True)
class Classification:
    task: str
    reason: str

    @property
    def local(self) -> bool:
        return self.task in LOCAL_TASKS

    @property
    def cloud(self) -> bool:
        return self.task in CLOUD_TASKS


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def classify(messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
             response_format: dict[str, Any] | None = None, max_tokens: int | None = None) -> Classification:
    """Score every task from the request's shape and the last user turn (system prompt counts half)."""
    scores: dict[str, float] = {t: 0.0 for t in _RULES}
    why: dict[str, str] = {}

    def hit(task: str, weight: float, rule: str) -> None:
        scores[task] += weight
        why.setdefault(task, rule)

    user = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    system = "\n".join(message_text(m) for m in messages if m.get("role") in ("system", "developer"))
    for text, weight in ((user, 1.0), (system, 0.5)):
        for task, patterns in _COMPILED.items():
            for pat in patterns:
                if m := pat.search(text):
                    hit(task, weight, f"text '{m.group(0)[:24].strip()}'")
                    break  # one hit per task per text
    if tools:
        hit("routing", 1.0, "tools offered")
    fmt = (response_format or {}).get("type")
    if fmt == "json_schema":
        schema = ((response_format or {}).get("json_schema") or {}).get("schema") or {}
        props = schema.get("properties") if isinstance(schema, dict) else None
        if isinstance(props, dict) and props and all(isinstance(p, dict) and "enum" in p for p in props.values()):
            hit("classification", 1.0, "schema of enums")
        else:
            hit("extraction", 1.0, "json_schema output")
    elif fmt == "json_object":
        hit("extraction", 0.5, "json output")
    if max_tokens is not None and max_tokens >= 2048:
        hit("reasoning", 0.5, f"max_tokens {max_tokens}")
    turns = sum(1 for m in messages if m.get("role") == "assistant")
    if turns >= 8:
        hit("reasoning", 0.5, f"{turns} assistant turns")

    best = max(scores.values())
    if best <= 0:
        return Classification("unknown", "no rule matched")
    winners = [t for t, s in scores.items() if s == best]
    if len(winners) > 1:
        sides = {("local" if w in LOCAL_TASKS else "cloud") for w in winners}
        if len(sides) == 1:  # a tie on one side still decides the route
            return Classification(winners[0], f"rule: {why[winners[0]]}")
        return Classification("unknown", "rules disagree: " + ", ".join(sorted(winners)))
    return Classification(winners[0], f"rule: {why[winners[0]]}")
