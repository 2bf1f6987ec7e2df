"""RAM a model needs at a context size: weights + KV cache + compute buffers + runtime.

KV cache, as llama.cpp allocates it (llama-kv-cache.cpp): per layer that keeps a cache,
``cells × n_head_kv × (head_dim_k × bytes(type_k) + head_dim_v × bytes(type_v))`` with
``cells = ctx`` rounded up to 256. Sliding-window layers get the same full-size cache when
llama.cpp runs with ``swa_full`` (llama-cpp-python 0.3.36 does: it logs "using full-size SWA
cache"); otherwise ``min(ctx, window + n_ubatch)`` cells. Hybrid models (Qwen 3.5) keep a cache
only in their attention layers.

Compute buffers are what the CPU backend actually touches while a prompt batch runs
(``n_ubatch`` rows of activations, the attention scores against the filled context, one row of
logits). llama.cpp *reserves* a larger worst-case buffer (514 MiB for the embedded model: logits
for every row of a 512-token ubatch), but untouched pages never become resident.

"Runtime" is the llama.cpp context and tokenizer tables: measured 46 MiB growth on load for a
262k-token vocabulary before any batch ran, modelled as 24 MiB + 80 bytes per vocabulary entry.

CPU backends repack some weight types into interleaved layouts for their fast kernels (x86 AVX2:
Q4_0, Q4_K, IQ4_NL; ARM dotprod: Q4_0, IQ4_NL; ARM i8mm: Q4_K too). With mmap the repacked copy
is anonymous memory *in addition to* the mapped file pages, so RSS counts those bytes twice
(the file pages are reclaimable cache).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from slmnode.planner.model_facts import ModelFacts

MiB = 1 << 20
KV_TYPE_BYTES: dict[str, float] = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "f32": 4.0}
_RUNTIME_BASE = 24 * MiB
_RUNTIME_PER_VOCAB = 80


def _pad(n: int, to: int = 256) -> int:
    return (n + to - 1) // to * to


def kv_cache_bytes(
    facts: ModelFacts, ctx: int, *, kv_type: str = "f16", swa_full: bool = True, n_ubatch: int = 512
) -> int:
    """Bytes of the KV cache llama.cpp allocates for ``ctx`` tokens (one sequence)."""
    width = KV_TYPE_BYTES[kv_type]
    per_cell_layer = facts.n_head_kv * (facts.head_dim_k + facts.head_dim_v) * width
    cells = _pad(ctx)
    swa_cells = cells
    if facts.n_swa_layers and facts.sliding_window and not swa_full:
        swa_cells = min(cells, _pad(facts.sliding_window + n_ubatch))
    full_layers = facts.n_kv_layers - facts.n_swa_layers
    return int(per_cell_layer * (full_layers * cells + facts.n_swa_layers * swa_cells))


def compute_bytes(facts: ModelFacts, ctx: int, *, n_ubatch: int = 512, flash_attn: bool = False) -> int:
    """Compute-buffer bytes touched while a ``n_ubatch`` batch attends to a full ``ctx``."""
    rows = min(n_ubatch, ctx)
    n_ff = facts.n_ff or 4 * facts.n_embd
    per_row = 3 * n_ff + 4 * facts.n_head * facts.head_dim_k + 4 * facts.n_embd
    scores = 0 if flash_attn else 2 * facts.n_head * rows * ctx  # KQ and its softmax
    return int(4 * (rows * per_row + scores) + 4 * facts.vocab)


def runtime_bytes(facts: ModelFacts) -> int:
    return _RUNTIME_BASE + _RUNTIME_PER_VOCAB * facts.vocab


def repack_bytes(facts: ModelFacts, repack_types: tuple[str, ...]) -> int:
    return sum(n for t, n in facts.bytes_by_type if t in repack_types)


@dataclass(frozen=True)
class RamEstimate:
    weights: int
    repacked: int
    kv_cache: int
    compute: int
    runtime: int

    @property
    def total(self) -> int:
        return self.weights + self.repacked + self.kv_cache + self.compute + self.runtime

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


def estimate_ram(
    facts: ModelFacts,
    ctx: int,
    *,
    kv_type: str = "f16",
    swa_full: bool = True,
    n_ubatch: int = 512,
    flash_attn: bool = False,
    repack_types: tuple[str, ...] = (),
) -> RamEstimate:
    """Peak resident bytes for serving ``facts`` at ``ctx`` with the context filled."""
    return RamEstimate(
        weights=facts.weight_bytes,
        repacked=repack_bytes(facts, repack_types),
        kv_cache=kv_cache_bytes(facts, ctx, kv_type=kv_type, swa_full=swa_full, n_ubatch=n_ubatch),
        compute=compute_bytes(facts, ctx, n_ubatch=n_ubatch, flash_attn=flash_attn),
        runtime=runtime_bytes(facts),
    )


def kv_split_fits(facts: ModelFacts, ctx: int, parallel: int, *, kv_type: str = "f16",
                  total_ram_bytes: int | None = None, share: float = 0.05) -> bool:
    """Give every sequence its own ``ctx`` cells (split KV) when that costs little RAM.

    In one unified cache, a decoding sequence's attention also spans the cells of other sequences'
    idle cached prefixes (measured on the embedded model: 10.8 -> 13.9 ms per token beside two idle
    1,100-token prefixes; split: 11.1 ms). Split costs ``parallel - 1`` more contexts of KV cache, so
    it is chosen only when that extra is at most ``share`` of the machine's RAM.
    """
    if parallel <= 1 or total_ram_bytes is None:
        return False
    extra = kv_cache_bytes(facts, ctx * parallel, kv_type=kv_type) - kv_cache_bytes(facts, ctx, kv_type=kv_type)
    return extra <= share * total_ram_bytes


def kv_cells(facts: ModelFacts, ctx: int, parallel: int, *, kv_layout: str = "unified", kv_type: str = "f16",
             total_ram_bytes: int | None = None) -> int:
    """KV cells the engine allocates: ``ctx``, or ``ctx x parallel`` with a split layout (``auto``: see
    :func:`kv_split_fits`), as the server decides it."""
    split = kv_layout == "split" or (kv_layout == "auto" and kv_split_fits(
        facts, ctx, parallel, kv_type=kv_type, total_ram_bytes=total_ram_bytes))
    return ctx * max(1, parallel) if split else ctx
