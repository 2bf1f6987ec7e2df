"""What the planner needs to know about one (model, quant): shapes and bytes.

Built either from a catalog entry plus a quant type (estimated bytes) or from a local GGUF
(exact tensor bytes, tied/untied output and MoE expert tensors read from the file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slmnode.catalog.families import ModelFamily
from slmnode.catalog.gguf_meta import GGUFMetadata, read_metadata
from slmnode.catalog.model_info import ModelInfo
from slmnode.catalog.quants import QuantType


@dataclass(frozen=True)
class ModelFacts:
    name: str
    quant: str
    architecture: str
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    vocab: int
    ctx_train: int
    n_kv_layers: int  # layers that keep a KV cache (all, except in hybrid recurrent models)
    n_swa_layers: int  # of those, layers limited to ``sliding_window`` tokens
    sliding_window: int | None
    weight_bytes: int  # every tensor in the file
    read_bytes_per_token: int  # weights streamed from RAM per generated token
    matmul_params_per_token: int  # weights multiplied per token (2 FLOP each)
    params: int
    params_active: int
    exact: bool  # True when read from a real GGUF
    n_ff: int = 0
    # bytes per ggml tensor type (exact for a GGUF; for a catalog estimate, the quant's base type)
    bytes_by_type: tuple[tuple[str, int], ...] = ()


def facts_from_family(family: ModelFamily, quant: QuantType) -> ModelFacts:
    """Estimate from published architecture facts and the quant's typical bits per weight."""
    bpw = quant.file_bpw
    emb_params = family.vocab * family.n_embd
    active = family.params_active or family.params
    # token_embd is a row lookup; an untied output.weight (already in params) is read in full;
    # a tied one means the embedding matrix is read once per token as the output projection.
    read_params = active if family.tied_embeddings else active - emb_params
    # llama.cpp's quantizer stores a tied embedding like an output tensor: at least Q6_K.
    emb_bpw = max(bpw, _Q6_K_BPW) if family.tied_embeddings else bpw
    emb_extra = int(emb_params * (emb_bpw - bpw) / 8) if family.tied_embeddings else 0
    return ModelFacts(
        name=family.key, quant=quant.name, architecture=family.architecture,
        n_layers=family.n_layers, n_embd=family.n_embd, n_head=family.n_head,
        n_head_kv=family.n_head_kv, head_dim_k=family.head_dim, head_dim_v=family.head_dim,
        vocab=family.vocab, ctx_train=family.ctx_train, n_kv_layers=family.n_kv_layers,
        n_swa_layers=family.n_swa_layers, sliding_window=family.sliding_window,
        weight_bytes=int(family.params * bpw / 8) + emb_extra,
        read_bytes_per_token=int(read_params * bpw / 8) + emb_extra,
        matmul_params_per_token=read_params,
        params=family.params, params_active=active, exact=False, n_ff=family.n_ff,
        bytes_by_type=((quant.base_type, int(family.params * bpw / 8 * _BASE_SHARE.get(quant.name, 0.9))),),
    )


# Share of a "mostly X" file's bytes stored in X itself (the rest is Q6_K/Q8_0/F32 by llama.cpp's
# quantizer rules); used only to estimate how many bytes a CPU backend repacks.
_Q6_K_BPW = 6.5625
_BASE_SHARE = {"Q4_K_M": 0.6, "Q4_K_S": 0.85, "Q3_K_M": 0.6, "Q5_K_M": 0.6}


def _swa_layers_from_meta(meta: GGUFMetadata, arch: str, n_layers: int) -> int:
    window = meta.get(f"{arch}.attention.sliding_window")
    if not window:
        return 0
    pattern = meta.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list):  # per-layer booleans in newer converters
        return sum(1 for p in pattern if p)
    period = pattern if isinstance(pattern, int) and pattern > 0 else None
    if period is None and arch.startswith("gemma3"):
        period = 6  # llama.cpp's hard-coded Gemma 3 layout: 5 local layers, then 1 global
    if period is None and arch == "gemma2":
        period = 2
    if period is None:
        return n_layers
    return sum(1 for i in range(n_layers) if (i + 1) % period != 0)


def facts_from_gguf(path: str | Path, info: ModelInfo | None = None) -> ModelFacts:
    """Exact facts from a GGUF file's header and tensor list."""
    from slmnode.catalog.model_info import model_info

    meta = read_metadata(path)
    info = info or model_info(path, meta)
    arch = info.architecture
    tensors = meta.tensors
    total = sum(t.n_bytes for t in tensors)
    by_name = {t.name: t for t in tensors}
    embd = by_name.get("token_embd.weight")
    tied = "output.weight" not in by_name
    n_expert = int(meta.get(f"{arch}.expert_count") or 0)
    n_used = int(meta.get(f"{arch}.expert_used_count") or 0)
    exp_bytes = sum(t.n_bytes for t in tensors if "_exps" in t.name)
    exp_params = sum(t.n_elements for t in tensors if "_exps" in t.name)
    inactive_frac = 1 - (n_used / n_expert) if n_expert and n_used else 0.0
    read = total - (embd.n_bytes if embd and not tied else 0) - int(exp_bytes * inactive_frac)
    params = sum(t.n_elements for t in tensors)
    active = params - int(exp_params * inactive_frac)
    matmul = active - (embd.n_elements if embd and not tied else 0)
    n_layers = info.block_count or 0
    head_count_kv = meta.get(f"{arch}.attention.head_count_kv")
    kv_layers = n_layers
    if isinstance(head_count_kv, list):  # per-layer (hybrid models): 0 means no KV cache
        kv_layers = sum(1 for h in head_count_kv if h)
        head_count_kv = max(head_count_kv)
    interval = meta.get(f"{arch}.full_attention_interval")
    if isinstance(interval, int) and interval > 0:
        kv_layers = n_layers // interval
    key_len = info.key_length or 0
    return ModelFacts(
        name=info.name or Path(path).stem, quant=info.quant_type or "?", architecture=arch,
        n_layers=n_layers, n_embd=info.embedding_length or 0, n_head=info.head_count or 0,
        n_head_kv=int(head_count_kv or info.head_count or 0), head_dim_k=key_len,
        head_dim_v=info.value_length or key_len, vocab=info.vocab_size or 0,
        ctx_train=info.context_length or 0, n_kv_layers=kv_layers,
        n_swa_layers=_swa_layers_from_meta(meta, arch, n_layers),
        sliding_window=info.sliding_window, weight_bytes=total, read_bytes_per_token=read,
        matmul_params_per_token=matmul, params=params, params_active=active, exact=True,
        n_ff=int(meta.get(f"{arch}.feed_forward_length") or 0) if not isinstance(
            meta.get(f"{arch}.feed_forward_length"), list) else max(meta.get(f"{arch}.feed_forward_length")),
        bytes_by_type=tuple(sorted(_sum_by_type(tensors).items())),
    )


def _sum_by_type(tensors: list) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tensors:
        out[t.ggml_type] = out.get(t.ggml_type, 0) + t.n_bytes
    return out


def facts_from_model_info(info: ModelInfo) -> ModelFacts:
    """From a :class:`ModelInfo`: exact when its file exists, else estimated from its fields."""
    if Path(info.path).is_file():
        return facts_from_gguf(info.path, info)
    n_layers = info.block_count or 0
    key_len = info.key_length or 0
    emb = (info.vocab_size or 0) * (info.embedding_length or 0)
    # Without the tensor list, assume a tied output (the conservative choice for bytes read).
    return ModelFacts(
        name=info.name or info.path, quant=info.quant_type or "?", architecture=info.architecture,
        n_layers=n_layers, n_embd=info.embedding_length or 0, n_head=info.head_count or 0,
        n_head_kv=info.head_count_kv or 0, head_dim_k=key_len, head_dim_v=info.value_length or key_len,
        vocab=info.vocab_size or 0, ctx_train=info.context_length or 0, n_kv_layers=n_layers,
        n_swa_layers=0, sliding_window=info.sliding_window, weight_bytes=info.size_bytes,
        read_bytes_per_token=info.size_bytes, matmul_params_per_token=max(info.parameter_count, emb),
        params=info.parameter_count, params_active=info.parameter_count, exact=False,
    )
