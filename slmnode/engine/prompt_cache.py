"""Host-RAM prompt cache: idle sequences' KV cells parked in memory, restored when a prompt matches.

In a unified KV cache every decoding sequence's attention spans all used cells, idle sequences'
included (masked, not skipped): one stream decodes 12.4 ms per token alone and 14.9 ms beside two
idle 1,100-token cached prompts. llama-server avoids that with ``cache_idle_slots`` and
``--cache-ram``: when a task starts, each idle slot's sequence is copied to host memory
(``llama_state_seq_get_data``) and removed from the KV cache; a later prompt that shares a prefix
with a parked one is copied back (``llama_state_seq_set_data``) instead of being evaluated again.

:class:`HostPromptCache` is that store for :class:`slmnode.engine.batch.BatchEngine`: entries hold
the tokens whose KV they carry (positions ``0..n-1``) and the serialized state; the store is bounded
in bytes and drops the least recently used entries first.

Sliding-window models (Gemma 3: 5 of every 6 layers attend over the last 512 positions) need care.
llama.cpp saves a sequence's sliding-window layers only for the positions its last token can see,
so a parked sequence of ``n`` tokens can be continued at position ``n - 1`` or ``n`` but not cut
back further: the window before an earlier position is not in the saved state (measured: restored
and cut back 30 tokens, greedy output changed). For such models (``swa=True``) an entry is used only
when the new prompt holds all its tokens but at most the last, and the engine parks extra copies
cut at the points later prompts are likely to diverge (see ``BatchEngine._save_copies``). Without a
sliding window any prefix of an entry is exact, and an entry that is a prefix of a newly parked one
is dropped as redundant.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
from typing import Any

import llama_cpp


def common_prefix(cached: list[int], tokens: list[int]) -> int:
    """How many leading tokens ``cached`` and ``tokens`` share."""
    n = 0
    for a, b in zip(cached, tokens):
        if a != b:
            break
        n += 1
    return n


@dataclass
class ParkedPrompt:
    tokens: list[int]
    data: Any  # a ctypes uint8 array with the sequence state
    nbytes: int
    last_used: float = field(default_factory=time.monotonic)


class HostPromptCache:
    """Parked sequences of one llama context, at most ``limit_bytes`` of them (0: the cache is off)."""

    def __init__(self, ctx: Any, limit_bytes: int, *, swa: bool = False) -> None:
        self.ctx, self.limit_bytes, self.swa = ctx, limit_bytes, swa
        self.entries: list[ParkedPrompt] = []
        self.saves = self.restores = self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.limit_bytes > 0

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def save(self, seq: int, tokens: list[int]) -> bool:
        """Copy sequence ``seq`` (holding ``tokens``) to host memory; False if it cannot be kept."""
        if not self.enabled or not tokens:
            return False
        size = llama_cpp.llama_state_seq_get_size(self.ctx, seq)
        if size == 0 or size > self.limit_bytes:
            return False
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(self.ctx, buf, size, seq)
        if written == 0:
            return False
        self.entries = [e for e in self.entries if not self._covers(tokens, e)]
        self.entries.append(ParkedPrompt(tokens=list(tokens), data=buf, nbytes=written))
        self.saves += 1
        self._evict()
        return True

    def usable(self, entry: ParkedPrompt, common: int) -> bool:
        """Whether ``entry`` restored and cut back to ``common`` tokens is the exact state."""
        return common > 0 and (not self.swa or common >= len(entry.tokens) - 1)

    def best(self, tokens: list[int]) -> tuple[ParkedPrompt, int] | None:
        """The usable entry sharing the longest prefix with ``tokens`` (and that prefix's length), if any."""
        found: tuple[ParkedPrompt, int] | None = None
        for e in self.entries:
            n = common_prefix(e.tokens, tokens)
            if self.usable(e, n) and (found is None or n > found[1]):
                found = (e, n)
        return found

    def restore(self, entry: ParkedPrompt, seq: int, used: int) -> bool:
        """Copy ``entry`` into sequence ``seq`` (emptied first by llama.cpp); False if it did not fit.

        ``used``: how many of its tokens the new request keeps. A wholly used entry leaves the store
        (the sequence now holds it and more); a partly used one stays for prompts that need the rest.
        """
        got = llama_cpp.llama_state_seq_set_data(self.ctx, entry.data, entry.nbytes, seq)
        if got != entry.nbytes:
            llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.ctx), seq, -1, -1)
            return False
        self.restores += 1
        entry.last_used = time.monotonic()
        if used >= len(entry.tokens):
            self.entries.remove(entry)
        return True

    def _covers(self, tokens: list[int], e: ParkedPrompt) -> bool:
        """Whether an entry holding ``tokens`` makes ``e`` redundant."""
        k = len(e.tokens)
        if k > len(tokens) or (self.swa and k < len(tokens) - 1):
            return False
        return e.tokens == tokens[:k]

    def clear(self) -> None:
        self.entries.clear()

    def _evict(self) -> None:
        total = self.nbytes
        for e in sorted(self.entries, key=lambda e: e.last_used):
            if total <= self.limit_bytes:
                break
            self.entries.remove(e)
            total -= e.nbytes
            self.evictions += 1
