"""``top_ids``: the ids of the k highest logits, by threshold then partition (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from slmnode.engine.sampling import top_ids


@pytest.mark.parametrize(("spread", "k"), [
    (1.0, 40),     # a flat distribution: the threshold keeps many ids, the partition picks 40
    (30.0, 40),    # a peaked one: few ids near the max, the threshold is widened or falls back
    (3.0, 2048),   # the grammar resample's subset size
    (3.0, 1),
])
def test_top_ids_are_the_k_highest_logits(spread: float, k: int) -> None:
    rng = np.random.default_rng(int(spread * 100) + k)
    logits = (rng.standard_normal(262_144) * spread).astype(np.float32)
    ids = top_ids(logits, k)
    assert len(ids) == k and len(set(ids.tolist())) == k
    assert set(ids.tolist()) == set(np.argsort(-logits, kind="stable")[:k].tolist())


def test_top_ids_of_k_at_least_the_vocabulary_is_every_id() -> None:
    logits = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    assert sorted(top_ids(logits, 5).tolist()) == [0, 1, 2]
