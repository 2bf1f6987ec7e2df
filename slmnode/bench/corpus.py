"""Prompt text for the speed workloads: fresh passages of a public-domain book, so that no prompt
shares a prefix with an earlier one (no prefix-cache hits) and every target in a run sees the same text.

The book is Lewis Carroll's *Alice's Adventures in Wonderland* (1865, public domain), shipped as
package data (``slmnode/data/alice_in_wonderland_pg11.txt``, read by :mod:`slmnode.corpus`).
"""

from __future__ import annotations

import functools
import random

from slmnode.corpus import default_corpus_text


@functools.cache
def words() -> tuple[str, ...]:
    text = default_corpus_text()
    body = [line for line in text.splitlines() if not line.startswith("***")]
    return tuple(" ".join(body).split())


class Passages:
    """Deterministic, never-repeating passages: the n-th call gives the n-th passage for a seed.

    ``tokens_per_word`` converts a token target into a word count; calibrate it with one request
    (prompt_tokens / words) so that pp512 is about 512 tokens on the model under test.
    """

    def __init__(self, seed: int = 0, tokens_per_word: float = 1.35) -> None:
        self._rng = random.Random(seed)
        self.tokens_per_word = tokens_per_word
        self._used: set[int] = set()

    def words_for(self, tokens: int) -> int:
        return max(1, round(tokens / self.tokens_per_word))

    def take(self, tokens: int) -> str:
        """About ``tokens`` tokens of text starting at a word offset not used before."""
        all_words = words()
        n = self.words_for(tokens)
        for _ in range(1000):
            start = self._rng.randrange(0, len(all_words) - n)
            key = start // 64
            if key not in self._used:
                self._used.add(key)
                return " ".join(all_words[start:start + n])
        raise RuntimeError("the corpus has no fresh passage left")  # needs thousands of passages
