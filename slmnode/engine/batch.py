"""Continuous batching over llama-cpp-python's low-level API (worker side; imports llama_cpp).

:class:`BatchEngine` decodes every active request in one multi-sequence ``llama_batch`` per step:
one token per generating sequence plus prompt chunks of the sequences still in prefill, up to
``n_batch`` tokens. Each sequence has its own sampler chain and, when constrained, its own grammar.
New requests join between decode steps; a finished or cancelled request frees its slot at once.

Prefix reuse: a slot's sequence keeps its KV cells after its request ends. A new request takes the
idle slot whose cached tokens share the longest prefix with its prompt (more than the BOS token),
else an empty slot, else the least recently used one; cells past the common prefix are removed
(``llama_memory_seq_rm``) and only the rest of the prompt is evaluated.

Parking (:mod:`slmnode.engine.prompt_cache`, on unless ``cache_ram_bytes`` is 0): in a unified KV
cache, while any request decodes, idle slots' sequences are copied to host RAM and removed from the
KV cache, so the running requests do not attend over them. A prompt that shares a longer prefix
with a parked sequence than with any idle slot gets it copied back into a slot. A slot's cache that
a different prompt would overwrite, or that a step needs the cells of, is parked too; the host
store is bounded in bytes and forgets the least recently used prompts first.

Sampling and the lazily checked grammar live in :mod:`slmnode.engine.sampling`.
"""

from __future__ import annotations

import codecs
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llama_cpp

from slmnode.engine.model import LoadedModel
from slmnode.engine.prompt_cache import HostPromptCache, ParkedPrompt, common_prefix
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.engine.sampling import SeqSampler
from slmnode.errors import ContextLengthExceeded, SlmnodeError

log = logging.getLogger("slmnode.engine.batch")

NO_STREAM_INTERVAL_S = 1.0  # token text of a non-streaming request: enough to show progress to the watchdog
SendAll = Callable[[list[dict[str, Any]]], None]  # writes a list of events at once (one pipe write)
Clock = Callable[[], float]  # seconds from an arbitrary origin (time.perf_counter: since boot, so maybe small)


class TextOut:
    """Incremental detokenizer: whole UTF-8 characters only, text that may start a stop string held back."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.held = ""
        self.stopped = False
        self.matched: str | None = None  # the stop string that ended the text

    def feed(self, piece: bytes) -> tuple[str, bool]:
        """Returns (text safe to emit now, a stop string was hit)."""
        if not self.stops:
            return self.decoder.decode(piece), False
        self.held += self.decoder.decode(piece)
        hits = [(at, s) for at, s in ((self.held.find(s), s) for s in self.stops) if at >= 0]
        if hits:
            at, self.matched = min(hits, key=lambda h: h[0])
            out, self.held, self.stopped = self.held[:at], "", True
            return out, True
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.held)), keep, -1):
                if self.held.endswith(s[:k]):
                    keep = k
                    break
        cut = len(self.held) - keep
        out, self.held = self.held[:cut], self.held[cut:]
        return out, False

    def flush(self) -> str:
        out, self.held = self.held + self.decoder.decode(b"", final=True), ""
        return out


@dataclass
class Job:
    rid: str
    tokens: list[int]
    max_tokens: int
    sampler: SeqSampler
    text: TextOut
    t0: float
    n_eval: int = 0  # prompt tokens in the KV cache (cached + evaluated)
    cached: int = 0
    next_token: int | None = None  # sampled, to be fed at the next step
    out_idx: int = -1  # index of this job's logits in the current batch
    generated: int = 0
    t_first: float | None = None
    pending: str = ""  # text not sent yet (token events are coalesced, see BatchEngine.token_interval_s)
    sent_at: float | None = None  # when the last token event of this job was sent (None: none yet)
    interval: float = 0.0  # token text of this job is sent at most this often
    thinking: Thinking | None = None  # enforces a thinking budget (None: no budget)

    def text_due(self, now: float) -> bool:
        """Whether pending text is sent at ``now``: at once when nothing was sent yet, then once per interval.

        Clock values are compared only with each other: ``time.perf_counter`` counts from boot, so
        ``now`` may well be smaller than the interval on a machine booted a short while ago.
        """
        return self.sent_at is None or now - self.sent_at >= self.interval


@dataclass
class Thinking:
    """A thinking budget: counts tokens inside the thinking block and, once the budget is spent, yields the
    tokens that close it (fed instead of sampled ones, so the answer keeps the rest of max_tokens)."""

    budget: int
    open_tag: str
    close: list[int]  # the close tag's tokens ("\n</think>\n\n")
    close_tag: str
    inside: bool
    spent: int = 0
    text: str = ""  # output so far (to see the tags)
    forcing: list[int] = field(default_factory=list)
    done: bool = False

    def forced(self) -> int | None:
        """The next token to feed instead of sampling, if the budget is closing the block."""
        return self.forcing.pop(0) if self.forcing else None

    def saw(self, text: str) -> None:
        if self.done:
            return
        self.text += text
        if not self.inside:
            if self.text.lstrip().startswith(self.open_tag):
                self.inside = True
            elif self.text.strip() and not self.open_tag.startswith(self.text.lstrip()):
                self.done = True  # the answer began without thinking
            return
        if self.close_tag in self.text:
            self.done = True
            return
        self.spent += 1
        if self.spent >= self.budget and not self.forcing:
            self.forcing = list(self.close)
            self.done = True


@dataclass
class Slot:
    seq: int
    cells: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds, positions 0..n-1
    marks: list[int] = field(default_factory=list)  # where later prompts are likely to diverge (see _save_copies)
    last_used: float = 0.0
    job: Job | None = None


class BatchEngine:
    """Serves generate requests from a queue, decoding up to ``n_seq`` of them together."""

    def __init__(self, lm: LoadedModel, send_all: SendAll, n_threads: int, token_interval_s: float = 0.04,
                 cache_ram_bytes: int = 0, clock: Clock = time.perf_counter) -> None:
        self.lm, self.send_all, self.clock = lm, send_all, clock
        self.outbox: list[dict[str, Any]] = []  # events of this loop turn, written together by flush()
        self.send = self.outbox.append
        self.token_interval_s = token_interval_s  # token text of one request is sent at most this often
        self.slots = [Slot(seq=i) for i in range(lm.n_seq)]
        self.waiting: deque[dict[str, Any]] = deque()
        self.cancelled: set[str] = set()
        self.cancel_lock = threading.Lock()
        self.n_threads = self.want_threads = n_threads
        self.pace_s = 0.0
        self.batch = llama_cpp.llama_batch_init(max(lm.n_batch, lm.n_seq), 0, 1)
        self.steps = 0
        self.parked = HostPromptCache(lm.ctx, cache_ram_bytes, swa=lm.n_swa > 0)
        # split KV: idle cells cost the other sequences nothing, so they stay until their room is needed
        self.park_idle = self.parked.enabled and not lm.kv_split

    def flush(self) -> None:
        if self.outbox:
            events, self.outbox[:] = list(self.outbox), []
            self.send_all(events)

    # -- governor / cancel ---------------------------------------------------------------------------
    def between_steps(self) -> None:
        if self.want_threads != self.n_threads:
            llama_cpp.llama_set_n_threads(self.lm.ctx, self.want_threads, self.want_threads)
            self.n_threads = self.want_threads
        if self.pace_s > 0:
            time.sleep(self.pace_s)

    def is_cancelled(self, rid: str) -> bool:
        with self.cancel_lock:
            return rid in self.cancelled

    def _forget_cancel(self, rid: str) -> None:
        with self.cancel_lock:
            self.cancelled.discard(rid)

    # -- admission -----------------------------------------------------------------------------------
    def _active(self) -> list[Job]:
        return [s.job for s in self.slots if s.job is not None]

    def _pick_slot(self, tokens: list[int]) -> tuple[Slot, int, ParkedPrompt | None] | None:
        """The slot for ``tokens``, how many of them its cache (or the parked entry to restore) holds."""
        idle = [s for s in self.slots if s.job is None]
        if not idle:
            return None
        head = tokens[:-1]  # the last prompt token is always evaluated
        best = max(idle, key=lambda s: common_prefix(s.cells, head))
        n = common_prefix(best.cells, head)
        parked = self.parked.best(head) if self.parked.entries else None
        spare = min(idle, key=lambda s: (len(s.cells) > 0, s.last_used))  # empty, else least recently used
        if parked is not None and parked[1] > max(n, 1):
            return spare, parked[1], parked[0]
        return (best, n, None) if n > 1 else (spare, 0, None)

    def _park(self, slot: Slot) -> None:
        """Copy an idle slot's sequence to host RAM (when the store is on) and free its cells."""
        if slot.cells:
            self._save_copies(slot, 0)

    def _save_copies(self, slot: Slot, keep: int) -> None:
        """Park ``slot``'s sequence, then cut it back to ``keep`` tokens.

        A sliding-window model's parked sequence cannot be cut back once restored (see
        :mod:`slmnode.engine.prompt_cache`), so copies cut at the slot's marks are parked too,
        longest first: where its request diverged from the cache it reused, and where the request's
        last message began (the system prompt and earlier turns end there).
        """
        if self.parked.enabled:
            self.parked.save(slot.seq, slot.cells)
            if self.lm.n_swa:
                for cut in sorted({m for m in slot.marks if keep < m < len(slot.cells) - 1}, reverse=True):
                    llama_cpp.llama_memory_seq_rm(self.lm.memory, slot.seq, cut, -1)
                    self.parked.save(slot.seq, slot.cells[:cut])
        llama_cpp.llama_memory_seq_rm(self.lm.memory, slot.seq, keep, -1)
        del slot.cells[keep:]
        slot.marks = [m for m in slot.marks if m <= keep]

    def _restore(self, slot: Slot, entry: ParkedPrompt, used: int) -> int:
        """Put a parked sequence into ``slot``; returns the tokens it now holds of the prompt (0: not restored)."""
        self._park(slot)
        if self._free_cells(len(entry.tokens)) < len(entry.tokens) or not self.parked.restore(entry, slot.seq, used):
            return 0
        slot.cells[:] = entry.tokens
        return used

    def _admit(self, msg: dict[str, Any]) -> bool:
        """Start a request in a free slot; False when every slot is busy."""
        from slmnode.engine.grammar import request_grammar

        rid = msg.get("id", "")
        if self.is_cancelled(rid):
            self.send({"ev": "done", "id": rid, "finish_reason": "cancelled", "usage": Usage().model_dump()})
            self._forget_cancel(rid)
            return True
        if all(s.job is not None for s in self.slots):
            return False
        try:
            params = GenerationParams.model_validate(msg["params"])
            tokens = self.lm.tokenize(msg["prompt"])
            n_ctx = self.lm.n_ctx
            if len(tokens) >= n_ctx:
                raise ContextLengthExceeded(
                    f"this model's context is {n_ctx} tokens, but the prompt has {len(tokens)} tokens; "
                    "shorten the prompt or start the node with a larger --ctx", param="messages")
            room = n_ctx - len(tokens)
            if params.max_tokens is not None and params.max_tokens > room:
                raise ContextLengthExceeded(
                    f"max_tokens={params.max_tokens} does not fit: the context is {n_ctx} tokens and the "
                    f"prompt uses {len(tokens)}, leaving {room}; lower max_tokens", param="max_tokens")
            gbnf = request_grammar(params)
            sampler = SeqSampler(self.lm, params, gbnf)
        except SlmnodeError as exc:
            self.send({"ev": "error", "id": rid, "kind": type(exc).__name__, "message": exc.message})
            return True
        except Exception as exc:  # a bug, or llama.cpp failing: never let one request kill the worker
            log.exception("request %s could not start", rid)
            self.send({"ev": "error", "id": rid, "kind": "EngineError", "message": f"generation failed: {exc}"})
            return True
        slot, common, entry = self._pick_slot(tokens)  # type: ignore[misc]
        if entry is not None:
            common = self._restore(slot, entry, common)
        elif common < len(slot.cells) // 2:  # mostly another prompt: keep it in host RAM
            self._save_copies(slot, common)
        llama_cpp.llama_memory_seq_rm(self.lm.memory, slot.seq, common, -1)
        del slot.cells[common:]
        slot.marks = [m for m in (common, self._shared_prefix(tokens, msg["prompt"], params)) if m > 1]
        t0 = self.clock()
        slot.job = Job(rid=rid, tokens=tokens, max_tokens=params.max_tokens or room, sampler=sampler,
                       text=TextOut(params.stop), t0=t0, n_eval=common, cached=common,
                       interval=self.token_interval_s if params.stream else NO_STREAM_INTERVAL_S,
                       sent_at=None if params.stream else t0,  # a stream's first text goes at once
                       thinking=self._thinking(params))
        slot.last_used = time.monotonic()
        return True

    def _thinking(self, params: GenerationParams) -> Thinking | None:
        if params.reasoning_budget is None:
            return None
        open_tag, close_tag = params.reasoning_tags
        close = list(self.lm.model.tokenize(f"\n{close_tag}\n\n".encode(), add_bos=False, special=True))
        return Thinking(params.reasoning_budget, open_tag, close, close_tag, inside=params.reasoning_open)

    def _shared_prefix(self, tokens: list[int], prompt: str, params: GenerationParams) -> int:
        """Tokens of ``prompt`` that later requests are likely to share (``params.shared_prefix_chars``)."""
        chars = params.shared_prefix_chars
        if not (self.lm.n_swa and self.parked.enabled and 0 < chars < len(prompt)):
            return 0
        return common_prefix(self.lm.tokenize(prompt[:chars]), tokens)

    def _pull(self, jobs: queue.Queue[dict[str, Any] | None], block: bool) -> bool:
        """Move arriving requests to the waiting line; False once the input has ended."""
        try:
            msg = jobs.get() if block else jobs.get_nowait()
            while True:
                if msg is None:
                    return False
                self.waiting.append(msg)
                msg = jobs.get_nowait()
        except queue.Empty:
            return True

    # -- finishing -----------------------------------------------------------------------------------
    def _finish(self, slot: Slot, reason: str) -> None:
        job = slot.job
        assert job is not None
        t_end = self.clock()
        rest = job.pending + ("" if reason == "cancelled" or job.text.stopped else job.text.flush())
        if rest:
            self.send({"ev": "token", "id": job.rid, "text": rest})
        if job.t_first is None:  # ended before its first token (cancelled in prefill)
            self.send({"ev": "started", "id": job.rid, "prompt_tokens": len(job.tokens), "cached_tokens": job.cached})
        t_first = job.t_first or t_end
        usage = Usage(prompt_tokens=len(job.tokens), cached_tokens=job.cached, completion_tokens=job.generated,
                      prompt_ms=(t_first - job.t0) * 1000, generation_ms=(t_end - t_first) * 1000)
        self.send({"ev": "done", "id": job.rid, "finish_reason": reason, "usage": usage.model_dump(),
                   "stop": job.text.matched, "parked": len(self.parked), "parked_bytes": self.parked.nbytes})
        job.sampler.close()
        self._forget_cancel(job.rid)
        slot.job = None
        slot.last_used = time.monotonic()

    def _fail_all(self, message: str) -> None:
        for slot in self.slots:
            if slot.job is not None:
                job = slot.job
                self.send({"ev": "error", "id": job.rid, "kind": "EngineError", "message": message})
                job.sampler.close()
                slot.job = None
            llama_cpp.llama_memory_seq_rm(self.lm.memory, slot.seq, -1, -1)
            slot.cells.clear()
            slot.marks.clear()
        self.parked.clear()

    # -- one decode step -----------------------------------------------------------------------------
    def _free_cells(self, needed: int) -> int:
        """Park idle caches (LRU first) until ``needed`` cells are free; returns the free count."""
        free = self.lm.kv_cells - sum(len(s.cells) for s in self.slots)
        if free >= needed:
            return free
        for slot in sorted((s for s in self.slots if s.job is None and s.cells), key=lambda s: s.last_used):
            if free >= needed:
                break
            free += len(slot.cells)
            self._park(slot)
        return free

    def _fill(self) -> list[tuple[Slot, int]]:
        """Fill the batch; returns (slot, prompt tokens added) for every slot in it."""
        b, n = self.batch, 0
        gen = [s for s in self.slots if s.job is not None and s.job.next_token is not None]
        pre = sorted((s for s in self.slots if s.job is not None and s.job.next_token is None),
                     key=lambda s: s.job.t0)  # type: ignore[union-attr]
        want = len(gen) + sum(len(s.job.tokens) - s.job.n_eval for s in pre)  # type: ignore[union-attr,misc]
        free = self._free_cells(want)
        if len(gen) > free:
            for s in sorted(gen, key=lambda s: len(s.cells), reverse=True)[: len(gen) - free]:
                self._finish(s, "length")  # the context is full: the longest sequences end first
            gen = [s for s in gen if s.job is not None]
        free -= len(gen)
        added: list[tuple[Slot, int]] = []

        def put(slot: Slot, token: int, logits: bool) -> None:
            nonlocal n
            b.token[n] = token
            b.pos[n] = len(slot.cells)
            b.n_seq_id[n] = 1
            b.seq_id[n][0] = slot.seq
            b.logits[n] = logits
            slot.cells.append(token)
            n += 1

        for s in gen:
            job = s.job
            assert job is not None and job.next_token is not None
            job.out_idx = n
            put(s, job.next_token, True)
            job.next_token = None
            added.append((s, 0))
        budget = min(self.lm.n_batch - n, free)
        # a prompt begins only when all of it fits beside the prompts already begun (no deadlock)
        reserve = sum(len(s.job.tokens) - s.job.n_eval for s in pre if s.job.n_eval > s.job.cached)  # type: ignore[union-attr,misc]
        for s in pre:
            job = s.job
            assert job is not None
            if job.n_eval == job.cached:
                if len(job.tokens) - job.n_eval > free - reserve:
                    continue
                reserve += len(job.tokens) - job.n_eval
            k = min(len(job.tokens) - job.n_eval, budget)
            if k <= 0:
                continue
            for i in range(job.n_eval, job.n_eval + k):
                put(s, job.tokens[i], i == len(job.tokens) - 1)
            job.out_idx = n - 1 if job.n_eval + k == len(job.tokens) else -1
            job.n_eval += k
            budget -= k
            added.append((s, k))
        b.n_tokens = n
        return added

    def step(self) -> None:
        if self.cancelled:  # (a set's truth is read atomically; the lock guards the lookups)
            for slot in self.slots:
                if slot.job is not None and self.is_cancelled(slot.job.rid):
                    self._finish(slot, "cancelled")
        if self.park_idle:
            idle = [s for s in self.slots if s.job is None and s.cells]
            if idle and any(s.job is not None for s in self.slots):  # idle cells would widen its attention
                for slot in idle:
                    self._park(slot)
        added = self._fill()
        if not added:
            return
        self.between_steps()
        rc = llama_cpp.llama_decode(self.lm.ctx, self.batch)
        self.steps += 1
        if rc != 0:
            log.error("llama_decode failed with code %d in a batch of %d tokens; resetting the KV cache",
                      rc, self.batch.n_tokens)
            self._fail_all(f"llama_decode failed with code {rc}; the KV cache was reset, retry the request")
            return
        now = self.clock()
        for slot, n_prompt in added:
            job = slot.job
            if job is None:
                continue
            if n_prompt and job.out_idx < 0:
                self.send({"ev": "progress", "id": job.rid, "prompt_done": job.n_eval})
                continue
            if n_prompt:
                self.send({"ev": "progress", "id": job.rid, "prompt_done": job.n_eval})
            forced = job.thinking.forced() if job.thinking is not None else None
            token = job.sampler.sample(job.out_idx) if forced is None else job.sampler.take(forced)
            if job.t_first is None:
                job.t_first = now
                self.send({"ev": "started", "id": job.rid, "prompt_tokens": len(job.tokens),
                           "cached_tokens": job.cached})
            slot.last_used = time.monotonic()
            if self.lm.is_eog(token):
                self._finish(slot, "stop")
                continue
            job.generated += 1
            text, hit = job.text.feed(self.lm.piece(token))
            if job.thinking is not None and forced is None:
                job.thinking.saw(text)
            if text:
                job.pending += text
                if job.text_due(now):
                    self.send({"ev": "token", "id": job.rid, "text": job.pending})
                    job.pending, job.sent_at = "", now
            if hit:
                self._finish(slot, "stop")
            elif job.generated >= job.max_tokens:
                self._finish(slot, "length")
            else:
                job.next_token = token

    # -- the loop ------------------------------------------------------------------------------------
    def run(self, jobs: queue.Queue[dict[str, Any] | None]) -> None:
        """Serve until the input ends (None on the queue); finishes the requests in flight first."""
        open_ = True
        while open_ or self.waiting or self._active():
            if open_:
                idle = not self.waiting and not self._active()
                if idle or jobs.qsize():  # (no exception raised per decode step when nothing arrived)
                    open_ = self._pull(jobs, block=idle)
            if self.waiting and self.cancelled:
                for msg in [m for m in self.waiting if self.is_cancelled(m.get("id", ""))]:
                    self.waiting.remove(msg)  # cancelled while queued: answer at once, not when a slot frees
                    self._admit(msg)
            while self.waiting and self._admit(self.waiting[0]):
                self.waiting.popleft()
            if not open_ and not self._active():
                for msg in self.waiting:
                    self.send({"ev": "done", "id": msg.get("id", ""), "finish_reason": "cancelled",
                               "usage": Usage().model_dump()})
                self.waiting.clear()
                break
            try:
                self.step()
            except Exception as exc:  # a bug, or llama.cpp failing: never let one step kill the worker
                log.exception("decode step failed; failing the active requests and resetting the KV cache")
                self._fail_all(f"generation failed: {exc}")
            finally:
                self.flush()  # one pipe write per step, before the next decode or a blocking wait
        self.flush()

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
