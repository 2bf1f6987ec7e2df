"""GGUF quant types people pick, with their bits per weight.

``block_bpw`` is exact: the ggml block size of the type itself (from the ``gguf`` package's
``GGML_QUANT_SIZES``). ``file_bpw`` is what a whole file of that "mostly" type averages, because
llama.cpp's quantizer keeps some tensors at a higher type (e.g. Q4_K_M stores half the FFN-down
and V tensors as Q6_K, output.weight as Q6_K). The file figures are the sizes llama.cpp's
``quantize`` help lists for a Llama-class 7-8B model divided by its parameter count; they are
approximations (±5%) for other models. For a local GGUF the planner uses the real tensor sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import gguf

from slmnode.errors import ConfigError


@dataclass(frozen=True)
class QuantType:
    name: str
    base_type: str  # the ggml type most tensors use
    block_bpw: float
    file_bpw: float
    note: str


def _bpw(type_name: str) -> float:
    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]]
    return size * 8 / block


_TABLE: list[tuple[str, str, float, str]] = [
    # name, base ggml type, typical whole-file bpw, note
    ("Q2_K", "Q2_K", 3.35, "smallest k-quant; large quality loss on <3B models"),
    ("Q3_K_S", "Q3_K", 3.50, ""),
    ("Q3_K_M", "Q3_K", 3.91, ""),
    ("Q3_K_L", "Q3_K", 4.27, ""),
    ("IQ3_XS", "IQ3_XXS", 3.30, "i-quant; needs an imatrix; slow on CPUs without dotprod"),
    ("IQ3_M", "IQ3_S", 3.66, "i-quant; needs an imatrix"),
    ("IQ4_XS", "IQ4_XS", 4.25, "i-quant"),
    ("IQ4_NL", "IQ4_NL", 4.50, "non-linear 4-bit; repacked on ARM"),
    ("Q4_0", "Q4_0", 4.55, "legacy 4-bit; repacked for ARM NEON/dotprod/i8mm kernels"),
    ("Q4_1", "Q4_1", 5.05, ""),
    ("Q4_K_S", "Q4_K", 4.58, ""),
    ("Q4_K_M", "Q4_K", 4.89, "the usual default"),
    ("Q5_0", "Q5_0", 5.54, ""),
    ("Q5_1", "Q5_1", 6.04, ""),
    ("Q5_K_S", "Q5_K", 5.54, ""),
    ("Q5_K_M", "Q5_K", 5.69, ""),
    ("Q6_K", "Q6_K", 6.5625, ""),
    ("Q8_0", "Q8_0", 8.50, "near-lossless"),
    ("F16", "F16", 16.0, "unquantized half precision"),
]

QUANTS: dict[str, QuantType] = {
    name: QuantType(name, base, _bpw(base), file_bpw, note) for name, base, file_bpw, note in _TABLE
}


def get_quant(name: str) -> QuantType:
    """Look up a quant type by name (case-insensitive: ``q4_k_m`` works)."""
    key = name.strip().upper()
    if key in QUANTS:
        return QUANTS[key]
    raise ConfigError(f"unknown quant type {name!r}; known: {', '.join(QUANTS)}")
