"""Parking idle prompt caches in host RAM (issue 6), in-process with the real model.

While one request decodes, the unified KV cache's idle sequences are copied to host memory and
removed (so its attention does not span them), and come back when a prompt matches. These tests
hold that to the state llama.cpp computes:

- a parked sequence restored into another slot continues with exactly the logits of the original;
- the embedded model's sliding-window layers (512 positions) make a restored sequence wrong when cut
  back further than its last token, so the store refuses that and the engine parks copies cut where
  prompts diverge (the shared-prefix hint, where the last message begins);
- through the engine with 4 slots, greedy outputs of restored prompts equal their outputs computed
  from scratch, the cached tokens are reported, and the store is bounded.

The prompts are longer than the 512-position window, or the sliding-window rule would not show.
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import pytest

from slmnode.engine.batch import BatchEngine
from slmnode.engine.model import LoadedModel
from slmnode.engine.prompt_cache import HostPromptCache
from slmnode.engine.protocol import GenerationParams

pytestmark = pytest.mark.integration

TOPICS = ["river boats", "mountain goats", "copper wire", "winter bread"]
COUNT, LETTERS = "Count on: 1, 2, 3, 4,", "Letters: a, b, c, d, e,"  # clear greedy continuations


def system(i: int) -> str:
    t = TOPICS[i]
    facts = " ".join(f"Fact {k} about {t}: item {k * 7 + i} is filed under shelf {k + i}." for k in range(30))
    return f"Notes on {t}. {facts}\n"


@pytest.fixture(scope="module")
def lm(gemma_path: Path) -> LoadedModel:
    model = LoadedModel(str(gemma_path), n_ctx=4096, n_threads=2, n_batch=512, n_ubatch=512, n_seq=4)
    assert model.n_swa == 512  # Gemma 3: the rule under test exists on this model
    return model


@pytest.fixture
def batch(lm: LoadedModel) -> Any:
    llama_cpp.llama_memory_clear(lm.memory, True)
    b = llama_cpp.llama_batch_init(512, 0, 1)
    yield b
    llama_cpp.llama_batch_free(b)
    llama_cpp.llama_memory_clear(lm.memory, True)


def _decode(lm: LoadedModel, batch: Any, seq: int, tokens: list[int], pos: int) -> np.ndarray:
    """Evaluate ``tokens`` at ``pos..`` in sequence ``seq``; the last token's logits."""
    for start in range(0, len(tokens), 512):
        chunk = tokens[start:start + 512]
        for i, t in enumerate(chunk):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, pos + start + i, 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = start + i == len(tokens) - 1
        batch.n_tokens = len(chunk)
        assert llama_cpp.llama_decode(lm.ctx, batch) == 0
    return np.array(lm.logits(batch.n_tokens - 1))


def test_a_parked_sequence_restored_into_another_slot_continues_with_the_same_logits(lm: LoadedModel, batch: Any) -> None:
    s, q = lm.tokenize(system(0)), lm.tokenize(LETTERS)[1:]
    _decode(lm, batch, 0, s, 0)
    fresh = _decode(lm, batch, 0, q, len(s))
    llama_cpp.llama_memory_clear(lm.memory, True)

    store = HostPromptCache(lm.ctx, 1 << 30, swa=True)
    _decode(lm, batch, 0, s, 0)
    assert store.save(0, s)
    llama_cpp.llama_memory_seq_rm(lm.memory, 0, -1, -1)
    assert llama_cpp.llama_memory_seq_pos_max(lm.memory, 0) == -1  # the cells are free
    entry, used = store.best(s + q)  # type: ignore[misc]
    assert used == len(s)
    assert store.restore(entry, 2, used)
    assert llama_cpp.llama_memory_seq_pos_max(lm.memory, 2) == len(s) - 1
    restored = _decode(lm, batch, 2, q, len(s))
    assert np.array_equal(restored, fresh)
    assert len(store) == 0  # wholly used: the slot holds it now


def test_a_restored_sliding_window_sequence_cut_back_is_wrong_so_only_a_cut_copy_is_used(lm: LoadedModel, batch: Any) -> None:
    s, first, then = lm.tokenize(system(1)), lm.tokenize(COUNT)[1:], lm.tokenize(LETTERS)[1:]
    # the reference: a resident sequence cut back (llama.cpp's CPU kernels are not batch-shape
    # invariant, so the prompt is evaluated in the same chunks in every case)
    _decode(lm, batch, 0, s + first, 0)
    llama_cpp.llama_memory_seq_rm(lm.memory, 0, len(s), -1)
    fresh = _decode(lm, batch, 0, then, len(s))
    llama_cpp.llama_memory_clear(lm.memory, True)

    store = HostPromptCache(lm.ctx, 1 << 30, swa=True)
    _decode(lm, batch, 0, s + first, 0)
    assert store.save(0, s + first)  # the whole sequence: its window holds only the last 512 positions
    assert store.best(s + then) is None  # cut back len(first) tokens: refused

    # what the refusal avoids: restore the whole sequence and cut it back anyway
    llama_cpp.llama_memory_seq_rm(lm.memory, 0, -1, -1)
    whole = store.entries[0]
    assert store.restore(whole, 1, len(s))
    llama_cpp.llama_memory_seq_rm(lm.memory, 1, len(s), -1)
    wrong = _decode(lm, batch, 1, then, len(s))
    assert not np.allclose(wrong, fresh, atol=1e-3)
    llama_cpp.llama_memory_clear(lm.memory, True)

    # the copy cut before parking (as BatchEngine._save_copies does) is exact
    _decode(lm, batch, 0, s + first, 0)
    llama_cpp.llama_memory_seq_rm(lm.memory, 0, len(s), -1)
    assert store.save(0, s)
    llama_cpp.llama_memory_seq_rm(lm.memory, 0, -1, -1)
    entry, used = store.best(s + then)  # type: ignore[misc]
    assert len(entry.tokens) == used == len(s)
    assert store.restore(entry, 3, used)
    assert np.array_equal(_decode(lm, batch, 3, then, len(s)), fresh)


def test_the_store_is_bounded_in_bytes_and_forgets_the_least_recently_used(lm: LoadedModel, batch: Any) -> None:
    prompts = [lm.tokenize(system(i)) for i in range(3)]
    for i, p in enumerate(prompts):
        _decode(lm, batch, i, p, 0)
    one = llama_cpp.llama_state_seq_get_size(lm.ctx, 0)
    store = HostPromptCache(lm.ctx, int(one * 2.5), swa=True)
    assert store.save(0, prompts[0]) and store.save(1, prompts[1])
    store.entries[0].last_used -= 10  # prompt 0 is the least recently used
    assert store.save(2, prompts[2])
    assert [e.tokens for e in store.entries] == prompts[1:] and store.evictions == 1
    assert store.nbytes <= store.limit_bytes
    assert not HostPromptCache(lm.ctx, 0).save(0, prompts[0])  # 0 bytes: the store is off


def _run(engine: BatchEngine, requests: list[tuple[str, str, str]]) -> dict[str, tuple[str, int]]:
    """Run (id, system, question) requests together; id -> (text, cached prompt tokens)."""
    events: list[dict[str, Any]] = []
    engine.send_all = events.extend
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
    for rid, sys_text, question in requests:
        params = GenerationParams(max_tokens=12, temperature=0, stream=False, shared_prefix_chars=len(sys_text))
        jobs.put({"op": "generate", "id": rid, "prompt": sys_text + question, "params": params.model_dump()})
    jobs.put(None)
    engine.run(jobs)
    assert not [e for e in events if e["ev"] == "error"]
    text = {rid: "".join(e["text"] for e in events if e["ev"] == "token" and e["id"] == rid) for rid, _, _ in requests}
    return {e["id"]: (text[e["id"]], e["usage"]["cached_tokens"]) for e in events if e["ev"] == "done"}


def test_the_engine_parks_idle_slots_while_others_decode_and_restores_them_on_a_match(lm: LoadedModel, batch: Any) -> None:
    plain = BatchEngine(lm, lambda _: None, 2, cache_ram_bytes=0)
    expected: dict[tuple[int, str], str] = {}
    for i in range(4):
        for q in (COUNT, LETTERS):
            llama_cpp.llama_memory_clear(lm.memory, True)
            for slot in plain.slots:
                slot.cells.clear()
            expected[i, q] = _run(plain, [("x", system(i), q)])["x"][0]
    llama_cpp.llama_memory_clear(lm.memory, True)
    n_sys = [len(lm.tokenize(system(i))) for i in range(4)]

    engine = BatchEngine(lm, lambda _: None, 2, cache_ram_bytes=512 << 20)
    got = _run(engine, [(f"a{i}", system(i), COUNT) for i in range(4)])  # 4 slots, 4 prompts
    assert {rid: t for rid, (t, _) in got.items()} == {f"a{i}": expected[i, COUNT] for i in range(4)}

    got = _run(engine, [("b0", system(0), LETTERS)])  # slot 0 reused in place; the 3 idle ones parked
    assert got["b0"] == (expected[0, LETTERS], n_sys[0])
    assert [len(s.cells) > 0 for s in engine.slots] == [True, False, False, False]
    assert engine.parked.saves >= 3

    before = engine.parked.restores
    got = _run(engine, [(f"c{i}", system(i), LETTERS) for i in (1, 2, 3)])  # back from host RAM, cut copies
    for i in (1, 2, 3):
        assert got[f"c{i}"] == (expected[i, LETTERS], n_sys[i])
    assert engine.parked.restores - before == 3
    assert len(engine.slots[0].cells) == 0  # parked while the three decoded

    got = _run(engine, [("d3", system(3), COUNT), ("d0", system(0), COUNT)])
    assert got["d3"][0] == expected[3, COUNT] and got["d3"][1] >= n_sys[3]
    assert got["d0"][0] == expected[0, COUNT] and got["d0"][1] >= n_sys[0]
    assert engine.parked.nbytes <= engine.parked.limit_bytes
    engine.close()
    plain.close()


def test_with_parking_off_idle_slots_keep_their_caches(lm: LoadedModel, batch: Any) -> None:
    engine = BatchEngine(lm, lambda _: None, 2, cache_ram_bytes=0)
    _run(engine, [("a", system(0), COUNT), ("b", system(1), COUNT)])
    got = _run(engine, [("c", system(0), LETTERS)])
    assert got["c"][1] == len(lm.tokenize(system(0)))
    assert len(engine.slots[1].cells) > 0 and engine.parked.saves == 0  # b's cache stayed in the KV cache
    engine.close()
