"""Predicted llama.cpp speed: prompt (pp512) and generation (tg128) tokens per second.

Generation is memory-bound: every token streams the weights it uses from RAM (active experts
only for MoE; the output projection, which for tied-embedding models is the whole embedding
matrix, counts) plus the KV cache filled so far. Time per token =
``bytes / effective bandwidth + n_layers x per-layer overhead``. Prompt processing is
compute-bound: ``2 FLOP x weights multiplied + attention FLOPs``, divided by the effective
FLOP/s of the device. Both effective figures come from a :class:`DeviceProfile`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from slmnode.catalog.model_info import ModelInfo
from slmnode.planner.memory import KV_TYPE_BYTES
from slmnode.planner.model_facts import ModelFacts, facts_from_model_info
from slmnode.planner.profiles import DeviceProfile

PP_TOKENS = 512
TG_TOKENS = 128


@dataclass(frozen=True)
class SpeedPrediction:
    prompt_tps: float  # pp512
    gen_tps: float  # tg128 from an empty context
    gen_tps_full_ctx: float  # generation once ``ctx`` tokens are in the cache
    threads: int
    bytes_per_token: int
    flops_per_prompt_token: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kv_bytes_per_position(facts: ModelFacts, kv_type: str) -> float:
    per_layer = facts.n_head_kv * (facts.head_dim_k + facts.head_dim_v) * KV_TYPE_BYTES[kv_type]
    return per_layer * facts.n_kv_layers


def _attn_flops(facts: ModelFacts, n_past: float) -> float:
    # QK^T and PV: 2 FLOP x 2 products x heads x head_dim x attended positions, per KV layer
    return 4.0 * facts.n_kv_layers * facts.n_head * facts.head_dim_k * n_past


def gen_seconds_per_token(
    facts: ModelFacts, profile: DeviceProfile, threads: int, n_past: float, kv_type: str = "f16"
) -> float:
    bw = profile.gen_bandwidth * min(1.0, threads / max(1, profile.bw_saturation_threads))
    window = facts.sliding_window or 0
    kv = _kv_bytes_per_position(facts, kv_type)
    if facts.n_swa_layers and window:  # sliding-window layers read at most `window` positions
        swa_share = facts.n_swa_layers / max(1, facts.n_kv_layers)
        kv_read = kv * ((1 - swa_share) * n_past + swa_share * min(n_past, window))
    else:
        kv_read = kv * n_past
    return (facts.read_bytes_per_token + kv_read) / bw + profile.layer_overhead_s * facts.n_layers


def predict_speed(
    info: ModelInfo | ModelFacts,
    profile: DeviceProfile,
    *,
    threads: int | None = None,
    ctx: int = 4096,
    kv_type: str = "f16",
) -> SpeedPrediction:
    """Predict pp512 and tg128 tokens/s of ``info`` on ``profile`` with ``threads`` threads."""
    facts = info if isinstance(info, ModelFacts) else facts_from_model_info(info)
    t = max(1, min(threads or profile.cores, profile.cores))
    gen_empty = gen_seconds_per_token(facts, profile, t, TG_TOKENS / 2, kv_type)
    gen_full = gen_seconds_per_token(facts, profile, t, ctx, kv_type)
    flops = 2.0 * facts.matmul_params_per_token + _attn_flops(facts, PP_TOKENS / 2)
    prompt_tps = profile.prompt_flops * (t / profile.cores) / flops
    return SpeedPrediction(
        prompt_tps=prompt_tps,
        gen_tps=1.0 / gen_empty,
        gen_tps_full_ctx=1.0 / gen_full,
        threads=t,
        bytes_per_token=facts.read_bytes_per_token,
        flops_per_prompt_token=flops,
    )
