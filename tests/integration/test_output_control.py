"""Output control in the real batch engine and model: the lazy grammar and the thinking budget.

Lazy grammar: free text until a trigger, constrained after it.

A tool-call grammar must not touch the text before a call (so free text keeps its speed and wording) and must
constrain everything from the trigger on. Derived from the model's own greedy output, so it holds for any model:
the trigger is a word the model writes anyway; the lazy run must reproduce the free run exactly up to that word,
then follow the grammar (a fixed tail, or JSON valid against a schema expanded from a placeholder in the worker).

Thinking budget: with the prompt's thinking block open, the engine writes the close tag itself after exactly
``budget`` thinking tokens, so the answer keeps the rest of ``max_tokens``; an answer that does not start with
thinking is left alone.
"""

from __future__ import annotations

import json
import queue
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from slmnode.engine.batch import BatchEngine
from slmnode.engine.model import LoadedModel
from slmnode.engine.protocol import GenerationParams

pytestmark = pytest.mark.integration
PROMPT = "Once upon a time, in a small village by the sea, there lived"


@pytest.fixture(scope="module")
def lm(gemma_path: Path) -> LoadedModel:
    return LoadedModel(str(gemma_path), n_ctx=1024, n_threads=2, n_batch=256, n_ubatch=256, n_seq=2)


def _generate(lm: LoadedModel, params: GenerationParams) -> tuple[list[str], str]:
    events: list[dict[str, Any]] = []
    engine = BatchEngine(lm, events.extend, 2, token_interval_s=0.0)
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
    jobs.put({"op": "generate", "id": "a", "prompt": PROMPT, "params": params.model_dump()})
    jobs.put(None)
    engine.run(jobs)
    engine.close()
    done = [e for e in events if e["ev"] in ("done", "error")]
    assert done and done[-1]["ev"] == "done", done
    return [e["text"] for e in events if e["ev"] == "token"], done[-1]["finish_reason"]


@pytest.fixture(scope="module")
def free_run(lm: LoadedModel) -> tuple[str, str]:
    """(text before the trigger word, the word): a whole-word token the free greedy run writes."""
    pieces, _ = _generate(lm, GenerationParams(temperature=0, max_tokens=32))
    for i, piece in enumerate(pieces[1:], start=1):
        m = re.fullmatch(r"(\s?)([A-Za-z]{3,})", piece)
        before = "".join(pieces[:i])
        if m and m.group(2) not in before:
            return before + m.group(1), m.group(2)
    pytest.fail(f"no whole-word token in the free run: {pieces!r}")


def _lazy(word: str, grammar: str, schemas: list[dict[str, Any]] | None = None) -> GenerationParams:
    return GenerationParams(temperature=0, max_tokens=64, grammar=grammar, grammar_schemas=schemas or [],
                            grammar_triggers=[rf"^[\s\S]*?({re.escape(word)})[\s\S]*$"])


def test_text_is_free_until_the_trigger_then_the_grammar_rules(lm: LoadedModel, free_run: tuple[str, str],
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    before, word = free_run
    pieces, finish = _generate(lm, _lazy(word, f'root ::= "{word}" " CONSTRAINED-7."'))
    assert "".join(pieces) == f"{before}{word} CONSTRAINED-7."
    assert finish == "stop"  # a complete grammar admits only the end of generation
    assert "awaiting trigger" not in capfd.readouterr().err  # llama.cpp's per-token debug line stays out of the log


def test_a_lazy_grammar_created_at_the_first_possible_trigger_character_behaves_the_same(
        lm: LoadedModel, free_run: tuple[str, str]) -> None:
    """The sampler defers creating a lazy grammar until a trigger's first character is written, replaying the
    tokens before it: the output must be exactly that of a grammar watching from the first token."""
    before, word = free_run
    grammar = f'root ::= "{word}" " CONSTRAINED-7."'
    watching = _generate(lm, _lazy(word, grammar))[0]
    deferred = _generate(lm, _lazy(word, grammar).model_copy(update={"grammar_trigger_starts": word[0]}))[0]
    assert deferred == watching and "".join(deferred) == f"{before}{word} CONSTRAINED-7."


def test_json_schema_placeholders_are_expanded_in_the_worker(lm: LoadedModel, free_run: tuple[str, str]) -> None:
    before, word = free_run
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9},
                                               "tag": {"type": "string", "enum": ["alpha", "beta"]}},
              "required": ["n", "tag"], "additionalProperties": False}
    grammar = f'root ::= "{word}" " " args\nargs ::= @json-schema(0)'
    text = "".join(_generate(lm, _lazy(word, grammar, [schema]))[0])
    assert text.startswith(before + word + " ")
    jsonschema.validate(json.loads(text[len(before + word) + 1:]), schema)


def test_a_grammar_without_triggers_applies_from_the_first_token(lm: LoadedModel) -> None:
    pieces, _ = _generate(lm, GenerationParams(temperature=0, max_tokens=16, grammar='root ::= "ABC" [0-9]'))
    text = "".join(pieces)
    assert re.fullmatch(r"ABC[0-9]", text), text


def test_thinking_budget_closes_the_block_after_exactly_budget_tokens(lm: LoadedModel) -> None:
    free, _ = _generate(lm, GenerationParams(temperature=0, max_tokens=12))
    pieces, _ = _generate(lm, GenerationParams(temperature=0, max_tokens=24, reasoning_budget=5, reasoning_open=True))
    assert pieces[:5] == free[:5]  # thinking is free up to its budget
    text = "".join(pieces)
    head = "".join(pieces[:5])
    assert text.startswith(head + "\n</think>\n\n"), text  # then the engine closes it
    assert len(text) > len(head + "\n</think>\n\n")  # and the answer goes on


def test_thinking_budget_leaves_an_answer_without_thinking_alone(lm: LoadedModel) -> None:
    free, _ = _generate(lm, GenerationParams(temperature=0, max_tokens=12))
    pieces, _ = _generate(lm, GenerationParams(temperature=0, max_tokens=12, reasoning_budget=2))
    assert pieces == free
