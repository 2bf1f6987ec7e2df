"""Plan and write quantizations of one source GGUF (names, requantize guard); llama.cpp does the work."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slmnode.catalog.model_info import model_info
from slmnode.engine.quantize import normalize_quant, quantize_gguf
from slmnode.errors import ConfigError

UNQUANTIZED = {"F32", "F16", "BF16"}
_QUANT_SUFFIX = re.compile(r"[-_.](f32|f16|bf16|i?q\d[a-z0-9_]*)$", re.IGNORECASE)


@dataclass(frozen=True)
class QuantJob:
    quant: str
    out: Path


def base_name(src: Path) -> str:
    """A readable stem for outputs: the file stem without its quant suffix (store blobs: model name)."""
    stem = src.stem
    if stem.startswith("sha256-"):
        name = model_info(src).name or "model"
        return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-")
    return _QUANT_SUFFIX.sub("", stem) or stem


def plan_quantize(src: Path, quants: list[str], out_dir: Path, *, allow_requantize: bool) -> tuple[list[QuantJob], str | None]:
    """Jobs to run and a warning (or None). Refuses a quantized source unless ``allow_requantize``."""
    source_type = model_info(src).quant_type or "unknown"
    warning = None
    if source_type.upper() not in UNQUANTIZED:
        if not allow_requantize:
            raise ConfigError(
                f"{src.name} is already quantized ({source_type}); quantize from an F16/F32 GGUF "
                "(`slmnode quant dequantize` writes one) or pass --allow-requantize", param="allow_requantize")
        warning = (f"requantizing from {source_type}: quality is bounded by the source, "
                   "the results can only be as good as it, never better")
    names = [normalize_quant(q) for q in quants if q.strip()]
    if not names:
        raise ConfigError("no quant types given; e.g. --to Q4_0,Q4_K_S,Q4_K_M,Q8_0", param="to")
    base = base_name(src)
    return [QuantJob(q, out_dir / f"{base}-{q}.gguf") for q in dict.fromkeys(names)], warning


def run_jobs(src: Path, jobs: list[QuantJob], *, allow_requantize: bool, threads: int = 0,
             on_done: Callable[[QuantJob], None] | None = None) -> list[Path]:
    out = []
    for job in jobs:
        out.append(quantize_gguf(src, job.out, job.quant, allow_requantize=allow_requantize, threads=threads))
        if on_done:
            on_done(job)
    return out
