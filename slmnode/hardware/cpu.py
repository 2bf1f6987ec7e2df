"""CPU facts needed before the full probe exists."""

from __future__ import annotations

import os

import psutil


def default_threads() -> int:
    """llama.cpp's rule: one thread per physical core (at least 1)."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1
