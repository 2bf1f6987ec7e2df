"""The public-domain text shipped with slmnode, for benchmarks and quality measurements.

Lewis Carroll, *Alice's Adventures in Wonderland* (1865; Project Gutenberg eBook #11), public domain
(see tests/data/misc/PROVENANCE.md for where the copy comes from).
"""

from __future__ import annotations

from importlib import resources

DEFAULT_CORPUS_NAME = "alice_in_wonderland_pg11.txt"


def default_corpus_text() -> str:
    return resources.files("slmnode").joinpath("data", DEFAULT_CORPUS_NAME).read_text(encoding="utf-8")
