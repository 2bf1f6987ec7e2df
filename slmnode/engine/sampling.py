"""Per-sequence sampling with a lazily checked grammar (worker side; imports llama_cpp).

:class:`SeqSampler` is one sequence's ``llama_sampler`` chain (llama.cpp's order: penalties, top-k,
top-p, min-p, temperature, dist; or greedy) plus an optional grammar sampler, used the way
llama-server does: sample with the chain first, check only the chosen token against the grammar (a
1-candidate array); only when that token is rejected, sample again among grammar-allowed tokens.

The resample is where constrained generation lost its speed: applying the grammar to all 262,144
candidates costs 30–150 ms here (measured), against ~13 ms for a whole decode step. So the resample
first tries the highest-logit candidates (64, then 2,048 of them, found with ``np.argpartition``),
and only when too few of those are allowed does it fall back to the full array. The result is the
same token the full path would give:
- greedy: the best allowed token is in the subset as soon as one subset token is allowed (every
  token outside has a lower logit); ties go to the lowest id, as llama.cpp's greedy sampler does;
- top-k sampling (``top_k > 0``): top-k over the grammar-masked vocabulary keeps the ``top_k`` best
  allowed tokens, which all lie in the subset once it holds ``top_k`` allowed ones; the rest of the
  chain (top-p, min-p, temperature, dist) then sees the same candidates and the same RNG state;
- penalties (which move logits) or ``top_k == 0`` use the full array, as before.

The unconstrained top-k chain gets the same treatment (``_top_k``): it runs over the ``top_k``
best candidates (``top_ids``) instead of filling and sorting all 262,144 (measured 0.9 → ~0.4 ms
per token); the chain's own top-k would keep exactly those, so the token is the same (up to the
order of exactly equal logits at the k-th place).
"""

from __future__ import annotations

import ctypes
import random
from typing import Any, Protocol

import llama_cpp
import numpy as np

from slmnode.engine.protocol import GenerationParams
from slmnode.errors import RequestError

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
SUBSET_SIZES = (64, 2048)  # highest-logit candidates tried, in order, before the full vocabulary


def top_ids(logits: np.ndarray, k: int) -> np.ndarray:
    """Ids of the ``k`` highest logits, in no order: a threshold under the maximum, then a partition.

    Comparing against ``max - delta`` (~0.05 ms over 262,144 logits) usually leaves a few hundred
    ids, so the partition is small; ``np.argpartition`` over all of them costs ~0.45 ms.
    """
    if k >= len(logits):
        return np.arange(len(logits), dtype=np.int32)
    top = float(logits.max())
    for delta in (8.0, 16.0):
        ids = np.flatnonzero(logits >= top - delta)
        if len(ids) >= k:
            return ids if len(ids) == k else ids[np.argpartition(logits[ids], -k)[-k:]]
    return np.argpartition(logits, -k)[-k:]


class ModelView(Protocol):
    """What a sampler needs from the loaded model (``LoadedModel`` provides it)."""

    vocab: Any
    n_vocab: int

    def piece(self, token: int) -> bytes: ...

    def logits(self, idx: int) -> np.ndarray: ...


def _grammar_sampler(vocab: Any, gbnf: str, triggers: list[str]) -> Any:
    """llama.cpp's grammar sampler; lazy (free text until a trigger pattern matches) when ``triggers`` are given.

    A lazy sampler passes every candidate while it waits, so the chosen-token check below costs nothing on
    free text; once triggered it constrains from the trigger's first capture group on.
    """
    if not triggers:
        return llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
    patterns = (ctypes.c_char_p * len(triggers))(*[t.encode("utf-8") for t in triggers])
    return llama_cpp.llama_sampler_init_grammar_lazy_patterns(vocab, gbnf.encode("utf-8"), b"root", patterns,
                                                              len(triggers), None, 0)


class SeqSampler:
    """One sequence's sampler chain plus an optional grammar checked lazily (chosen token first)."""

    def __init__(self, lm: ModelView, params: GenerationParams, gbnf: str | None) -> None:
        self.lm = lm
        self.greedy = params.temperature <= 0
        self.top_k = params.top_k
        self.penalized = (params.repeat_penalty != 1.0 or params.presence_penalty != 0.0
                          or params.frequency_penalty != 0.0)
        self.chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = lambda s: llama_cpp.llama_sampler_chain_add(self.chain, s)  # noqa: E731
        if self.penalized:
            add(llama_cpp.llama_sampler_init_penalties(64, params.repeat_penalty, params.frequency_penalty,
                                                       params.presence_penalty))
        if self.greedy:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(llama_cpp.llama_sampler_init_top_k(params.top_k))
            add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
            add(llama_cpp.llama_sampler_init_temp(params.temperature))
            seed = params.seed if params.seed is not None else random.getrandbits(32)
            add(llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        self.grammar = None
        # A lazy grammar waits for its trigger, but llama.cpp still runs the trigger patterns over all the text
        # so far at every token (3-10 % of a small model's step, measured). Nothing can trigger before one of
        # ``grammar_trigger_starts`` (the openers' first characters) is written, so the sampler is created only
        # then and replays the tokens before it: the same state as if it had watched from the start.
        self._deferred: tuple[str, list[str]] | None = None
        self._seen: list[int] = []
        self._starts = frozenset(params.grammar_trigger_starts.encode("utf-8"))
        if gbnf is not None:
            self.grammar = _grammar_sampler(lm.vocab, gbnf, params.grammar_triggers)
            if not self.grammar:
                llama_cpp.llama_sampler_free(self.chain)
                raise RequestError("grammar rejected by llama.cpp", param="response_format")
            if params.grammar_triggers and self._starts:
                llama_cpp.llama_sampler_free(self.grammar)  # it parsed: build it again when it may trigger
                self.grammar, self._deferred = None, (gbnf, list(params.grammar_triggers))
        self._cand = np.zeros(lm.n_vocab, dtype=TOKEN_DATA)
        self._ids = np.arange(lm.n_vocab, dtype=np.int32)
        self._one = np.zeros(1, dtype=TOKEN_DATA)
        self.grammar_resamples = 0  # chosen tokens the grammar rejected
        self.full_resamples = 0  # of those, resamples that needed the whole vocabulary

    @staticmethod
    def _array(data: np.ndarray) -> llama_cpp.llama_token_data_array:
        return llama_cpp.llama_token_data_array(
            data=data.ctypes.data_as(llama_cpp.llama_token_data_p), size=len(data), selected=-1, sorted=False)

    def _allowed(self, token: int, logit: float) -> bool:
        self._one[0] = (token, logit, 0.0)
        arr = self._array(self._one)
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        return bool(np.isfinite(self._one["logit"][0]))

    def _full(self, logits: np.ndarray, with_grammar: bool) -> int:
        cand = self._cand
        cand["id"] = self._ids
        cand["logit"] = logits
        cand["p"] = 0.0
        arr = self._array(cand)
        if with_grammar:
            llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(arr))
        return int(cand["id"][arr.selected])

    def _resample(self, logits: np.ndarray) -> int:
        """The token the full grammar-masked resample would give, trying the best candidates first."""
        need = 1 if self.greedy else self.top_k
        if not self.penalized and need > 0:
            ids = top_ids(logits, SUBSET_SIZES[-1])
            ids = ids[np.argsort(-logits[ids], kind="stable")].astype(np.int32)
            top = len(ids)
            for k in SUBSET_SIZES:
                k = min(k, top)
                sub = self._cand[:k]
                sub["id"] = ids[:k]
                sub["logit"] = logits[ids[:k]]
                sub["p"] = 0.0
                arr = self._array(sub)
                llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
                finite = np.isfinite(sub["logit"])
                if int(finite.sum()) >= need:
                    if self.greedy:
                        best = sub["logit"][finite].max()
                        return int(sub["id"][finite & (sub["logit"] == best)].min())
                    llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(arr))
                    return int(sub["id"][arr.selected])
        self.full_resamples += 1
        return self._full(logits, with_grammar=True)

    def _top_k(self, logits: np.ndarray) -> int:
        """The chain over the ``top_k`` best candidates only: what its own top-k would keep of all."""
        ids = top_ids(logits, self.top_k)
        sub = self._cand[: len(ids)]
        sub["id"] = ids
        sub["logit"] = logits[ids]
        sub["p"] = 0.0
        arr = self._array(sub)
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(arr))
        return int(sub["id"][arr.selected])

    def sample(self, idx: int) -> int:
        logits = self.lm.logits(idx)
        if self.greedy and not self.penalized:
            token = int(np.argmax(logits))
        elif not self.penalized and 0 < self.top_k < len(logits):
            token = self._top_k(logits)
        else:
            token = self._full(logits, with_grammar=False)
        if self.grammar is not None and not self._allowed(token, float(logits[token])):
            self.grammar_resamples += 1
            token = self._resample(logits)
        if self.penalized or not self.greedy:  # a greedy chain keeps no state
            llama_cpp.llama_sampler_accept(self.chain, token)
        self._watch(token)
        if self.grammar is not None:
            llama_cpp.llama_sampler_accept(self.grammar, token)
        return token

    def take(self, token: int) -> int:
        """Feed ``token`` (written by the engine, not sampled) through the chain's and grammar's state."""
        if self.penalized or not self.greedy:
            llama_cpp.llama_sampler_accept(self.chain, token)
        self._watch(token)
        if self.grammar is not None:
            llama_cpp.llama_sampler_accept(self.grammar, token)
        return token

    def _watch(self, token: int) -> None:
        """Create a deferred lazy grammar when ``token`` may begin a trigger (see ``__init__``)."""
        if self._deferred is None:
            return
        if self._starts.isdisjoint(self.lm.piece(token)):
            self._seen.append(token)
            return
        gbnf, triggers = self._deferred
        self._deferred = None
        self.grammar = _grammar_sampler(self.lm.vocab, gbnf, triggers)
        for earlier in self._seen:
            llama_cpp.llama_sampler_accept(self.grammar, earlier)
        self._seen = []

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self.chain)
        if self.grammar is not None:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None
