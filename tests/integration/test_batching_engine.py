"""The batch engine in-process with the real model: the fast grammar resample and coalesced events.

- ``SeqSampler._resample`` (grammar applied to the highest-logit candidates first) must give the
  token the full-vocabulary resample gives, for greedy and for seeded top-k sampling, at every step
  of a real constrained generation;
- token events coalesced over ``token_interval_s`` must carry the same text as one event per token.

Timing decisions are tested against a virtual clock (``STEP_S`` per decode step, starting at 0 like
``time.perf_counter`` on a machine booted moments ago), so no assertion depends on this machine's speed
or uptime.
"""

from __future__ import annotations

import ctypes
import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from slmnode.engine.batch import NO_STREAM_INTERVAL_S, BatchEngine
from slmnode.engine.grammar import grammar_text_for
from slmnode.engine.model import LoadedModel
from slmnode.engine.protocol import GenerationParams
from slmnode.engine.sampling import SeqSampler

pytestmark = pytest.mark.integration

SCHEMA = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string", "maxLength": 20},
                                                     "minItems": 3, "maxItems": 3},
                                           "count": {"type": "integer", "minimum": 0, "maximum": 999}},
          "required": ["items", "count"]}
PROMPT = "<start_of_turn>user\nList three fruits as JSON.<end_of_turn>\n<start_of_turn>model\n"


@pytest.fixture(scope="module")
def lm(gemma_path: Path) -> LoadedModel:
    return LoadedModel(str(gemma_path), n_ctx=1024, n_threads=2, n_batch=256, n_ubatch=256, n_seq=2)


def _decode(lm: LoadedModel, batch: Any, tokens: list[int], pos: int) -> None:
    for i, t in enumerate(tokens):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, pos + i, 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = i == len(tokens) - 1
    batch.n_tokens = len(tokens)
    assert llama_cpp.llama_decode(lm.ctx, batch) == 0


@pytest.mark.parametrize("params", [
    GenerationParams(temperature=0),
    GenerationParams(temperature=0.9, top_k=40, seed=7),
    GenerationParams(temperature=1.5, top_k=8, top_p=1.0, min_p=0.0, seed=11),
], ids=["greedy", "top_k40", "top_k8_hot"])
def test_grammar_resample_on_top_candidates_equals_the_full_vocabulary_resample(
        lm: LoadedModel, params: GenerationParams) -> None:
    gbnf = grammar_text_for(SCHEMA, False)
    fast, full = SeqSampler(lm, params, gbnf), SeqSampler(lm, params, gbnf)  # same seed, same state
    batch = llama_cpp.llama_batch_init(256, 0, 1)
    llama_cpp.llama_memory_seq_rm(lm.memory, 0, -1, -1)
    tokens = lm.tokenize(PROMPT)
    try:
        _decode(lm, batch, tokens, 0)
        pos, out = len(tokens), b""
        for _ in range(60):
            logits = lm.logits(batch.n_tokens - 1)
            token = fast._resample(logits)  # as after a rejection: the grammar picks among all tokens
            assert token == full._full(logits, with_grammar=True), out
            if lm.is_eog(token):
                break
            for s in (fast, full):
                llama_cpp.llama_sampler_accept(s.chain, token)
                llama_cpp.llama_sampler_accept(s.grammar, token)
            out += lm.piece(token)
            _decode(lm, batch, [token], pos)
            pos += 1
        assert out.startswith(b"{") and b'"items"' in out
        if params.temperature == 0:
            assert fast.full_resamples == 0  # every greedy resample found its token among the top candidates
    finally:
        fast.close()
        full.close()
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_memory_seq_rm(lm.memory, 0, -1, -1)


STEP_S = 0.01  # virtual seconds per decode step


def virtual_clock(engine: BatchEngine) -> Callable[[], float]:
    """A machine booted just before the first step that decodes one step every ``STEP_S`` seconds."""
    return lambda: engine.steps * STEP_S


def _run(lm: LoadedModel, interval_s: float, prompt: str, n: int, stream: bool = True,
         clock: Callable[[BatchEngine], Callable[[], float]] | None = None) -> tuple[list[dict[str, Any]], int]:
    events: list[dict[str, Any]] = []
    writes = 0

    def send_all(msgs: list[dict[str, Any]]) -> None:
        nonlocal writes
        writes += 1
        events.extend(msgs)

    engine = BatchEngine(lm, send_all, 2, token_interval_s=interval_s)
    if clock is not None:
        engine.clock = clock(engine)
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
    jobs.put({"op": "generate", "id": "a", "prompt": prompt,
              "params": GenerationParams(max_tokens=n, temperature=0, stream=stream).model_dump()})
    jobs.put(None)
    engine.run(jobs)
    engine.close()
    return events, writes


def _text(events: list[dict[str, Any]]) -> str:
    return "".join(e["text"] for e in events if e["ev"] == "token")


@pytest.mark.parametrize("clock", [None, virtual_clock], ids=["perf_counter", "booted_just_now"])
def test_coalesced_token_events_carry_the_same_text_as_one_event_per_token(
        lm: LoadedModel, clock: Callable[[BatchEngine], Callable[[], float]] | None) -> None:
    per_token, _ = _run(lm, 0.0, "1, 2, 3, 4,", 24, clock=clock)
    # an interval far longer than the clock's value (the uptime): the first text must still go at once
    coalesced, writes = _run(lm, 3600.0, "1, 2, 3, 4,", 24, clock=clock)
    assert _text(per_token) == _text(coalesced) and _text(per_token).strip()
    assert sum(e["ev"] == "token" for e in per_token) >= 10
    # the first text goes at once (time to first token), the rest when the request ends
    assert [e["ev"] for e in coalesced if e["ev"] != "progress"] == ["started", "token", "token", "done"]
    assert coalesced[-1]["usage"]["completion_tokens"] == 24
    assert writes <= 25  # one pipe write per decode step (24 here) at most, not one per event


def test_token_text_is_sent_once_per_interval_of_the_engine_clock(lm: LoadedModel) -> None:
    per_token, _ = _run(lm, 0.0, "1, 2, 3, 4,", 24, clock=virtual_clock)
    coalesced, _ = _run(lm, 4.5 * STEP_S, "1, 2, 3, 4,", 24, clock=virtual_clock)
    assert _text(coalesced) == _text(per_token) and sum(e["ev"] == "token" for e in per_token) == 24
    # text at steps 1 (at once), 6, 11, 16 and 21, the rest (steps 22-24) when the request ends
    assert sum(e["ev"] == "token" for e in coalesced) == 6


def test_a_non_streaming_request_gets_its_text_in_one_event_not_one_per_interval(lm: LoadedModel) -> None:
    streamed, _ = _run(lm, 0.0, "1, 2, 3, 4,", 24, clock=virtual_clock)
    whole, _ = _run(lm, 0.0, "1, 2, 3, 4,", 24, stream=False, clock=virtual_clock)
    assert _text(whole) == _text(streamed) and _text(whole).strip()
    # 24 steps of the virtual clock are far less than NO_STREAM_INTERVAL_S: no event until the end
    assert 24 * STEP_S < NO_STREAM_INTERVAL_S
    assert [e["ev"] for e in whole if e["ev"] != "progress"] == ["started", "token", "done"]


def test_cached_pieces_and_logits_views_match_fresh_ones(lm: LoadedModel) -> None:
    ids = lm.tokenize("Pieces: naïve café, 東京, emoji 🙂 and spaces   end")

    def fresh(t: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(lm.vocab, t, buf, 64, 0, False)
        return buf.raw[:n]

    for _ in range(2):  # the second pass comes from the cache
        assert [lm.piece(t) for t in ids[1:]] == [fresh(t) for t in ids[1:]]
    assert b"".join(lm.piece(t) for t in ids[1:]).decode("utf-8") == "Pieces: naïve café, 東京, emoji 🙂 and spaces   end"
    llama_cpp.llama_memory_clear(lm.memory, True)  # (engine runs above left cached prefixes)
    batch = llama_cpp.llama_batch_init(64, 0, 1)
    try:
        _decode(lm, batch, ids, 0)
        first = lm.logits(len(ids) - 1).copy()
        _decode(lm, batch, [ids[-1]], len(ids))
        second = lm.logits(0)  # the same buffer, new values: the cached view must show them
        raw = llama_cpp.llama_get_logits_ith(lm.ctx, 0)
        assert second[:5].tolist() == [raw[i] for i in range(5)]
        assert second.tolist() != first.tolist()
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_memory_seq_rm(lm.memory, 0, -1, -1)


@pytest.mark.parametrize("params", [
    GenerationParams(seed=3),  # llama.cpp's defaults: top-k 40, top-p 0.95, min-p 0.05, temperature 0.8
    GenerationParams(temperature=1.5, top_k=100, top_p=1.0, min_p=0.0, seed=5),
], ids=["defaults", "hot_top_k100"])
def test_top_k_chain_over_the_best_candidates_equals_the_chain_over_all(lm: LoadedModel, params: GenerationParams) -> None:
    fast, full = SeqSampler(lm, params, None), SeqSampler(lm, params, None)  # same seed
    batch = llama_cpp.llama_batch_init(256, 0, 1)
    llama_cpp.llama_memory_seq_rm(lm.memory, 0, -1, -1)
    tokens = lm.tokenize("Once upon a time")
    try:
        _decode(lm, batch, tokens, 0)
        pos = len(tokens)
        for _ in range(40):
            logits = lm.logits(batch.n_tokens - 1)
            token = fast._top_k(logits)
            assert token == full._full(logits, with_grammar=False)
            for s in (fast, full):
                llama_cpp.llama_sampler_accept(s.chain, token)
            _decode(lm, batch, [token], pos)
            pos += 1
    finally:
        fast.close()
        full.close()
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_memory_seq_rm(lm.memory, 0, -1, -1)

