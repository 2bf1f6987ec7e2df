"""The default evaluation text: Alice's Adventures in Wonderland (Project Gutenberg #11, public domain)."""

from __future__ import annotations

from pathlib import Path

from slmnode.corpus import DEFAULT_CORPUS_NAME, default_corpus_text
from slmnode.errors import ConfigError


def load_corpus(path: str | Path | None = None, *, max_chars: int | None = None) -> tuple[str, str]:
    """Return ``(label, text)`` of ``path`` or of the shipped default corpus, cut to ``max_chars``."""
    if path is None:
        text = default_corpus_text()
        label = DEFAULT_CORPUS_NAME
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read corpus {p}: {exc}; pass a UTF-8 text file with --corpus", param="corpus") from exc
        label = p.name
    if max_chars is not None:
        text = text[:max_chars]
    if not text.strip():
        raise ConfigError(f"corpus {label} is empty", param="corpus")
    return label, text
