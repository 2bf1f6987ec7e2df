"""Quantize a GGUF through llama.cpp's own quantizer (``llama_model_quantize``).

One of the few modules that import ``llama_cpp`` (import deferred to the call). The output is
written to a temporary name beside the target and renamed only on success: llama.cpp leaves a
partial file behind when it refuses (e.g. a quantized source without ``allow_requantize``).
"""

from __future__ import annotations

import os
from pathlib import Path

from slmnode.errors import ConfigError, ModelFormatError

# the "mostly" file types a user picks, by llama.cpp's own names (as `llama-quantize --help`)
QUANT_FTYPES: dict[str, str] = {
    "F32": "LLAMA_FTYPE_ALL_F32", "F16": "LLAMA_FTYPE_MOSTLY_F16", "BF16": "LLAMA_FTYPE_MOSTLY_BF16",
    "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "Q6_K": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M", "Q5_K_S": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "Q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0", "Q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "Q4_K_S": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "Q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "IQ4_NL": "LLAMA_FTYPE_MOSTLY_IQ4_NL", "Q3_K_L": "LLAMA_FTYPE_MOSTLY_Q3_K_L",
    "Q3_K_M": "LLAMA_FTYPE_MOSTLY_Q3_K_M", "Q3_K_S": "LLAMA_FTYPE_MOSTLY_Q3_K_S",
    "Q2_K": "LLAMA_FTYPE_MOSTLY_Q2_K",
}


def quant_names() -> list[str]:
    return list(QUANT_FTYPES)


def normalize_quant(name: str) -> str:
    """``q4_k_m`` -> ``Q4_K_M``; unknown names raise ConfigError listing the known ones."""
    key = name.strip().upper()
    if key not in QUANT_FTYPES:
        raise ConfigError(f"unknown quant type '{name}'; choose from {', '.join(QUANT_FTYPES)}", param="to")
    return key


def quantize_gguf(
    src: str | Path, dst: str | Path, quant: str, *, allow_requantize: bool = False, threads: int = 0,
    verbose: bool = False,
) -> Path:
    """Write ``src`` quantized to ``quant`` at ``dst`` (atomic: temp name, rename on success)."""
    import llama_cpp
    from llama_cpp import _logger


    src, dst = Path(src), Path(dst)
    key = normalize_quant(quant)
    if not src.is_file():
        raise ModelFormatError(f"no such model file: {src}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part-{os.getpid()}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_FTYPES[key])
    params.nthread = threads
    params.allow_requantize = allow_requantize
    level = _logger.logger.level
    _logger.set_verbose(verbose)  # llama.cpp logs every tensor through this callback
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    finally:
        _logger.logger.setLevel(level)
        if not tmp.exists() or tmp.stat().st_size == 0:
            tmp.unlink(missing_ok=True)
    if rc != 0:
        tmp.unlink(missing_ok=True)
        hint = "" if allow_requantize else " (a quantized source needs --allow-requantize)"
        raise ModelFormatError(f"llama.cpp could not quantize {src.name} to {key} (code {rc}){hint}")
    os.replace(tmp, dst)
    return dst
