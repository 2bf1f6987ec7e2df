"""Turn a short real llama.cpp run on this machine into a :class:`DeviceProfile`.

Why a real run and not a numpy bandwidth probe: what the planner needs is the bandwidth and
FLOP/s *llama.cpp* reaches (its kernels, its threading, this build's ISA paths), and a STREAM-like
probe measures something else (on the Pi 5, llama.cpp decode reached 76% of the STREAM ceiling;
the ratio is not portable). The run takes seconds: a 256-token prompt batch and 32 decode steps
of the embedded model, median of 2, the same shape llama-bench uses. The engine measures
(``slmnode.engine.build_info.measure_throughput``); this module only does the arithmetic, so it
stays below the engine in the dependency order.
"""

from __future__ import annotations

from slmnode.planner.model_facts import ModelFacts
from slmnode.planner.profiles import DeviceProfile
from slmnode.planner.speed import _attn_flops, _kv_bytes_per_position

LOCAL_LAYER_OVERHEAD_S = 0.02e-3  # x86 estimate; the single-model calibration cannot separate it


def repack_types_for(arch: str, cpu_flags: set[str], build: dict[str, int]) -> tuple[str, ...]:
    """Weight types this llama.cpp build repacks on this CPU (see ggml-cpu/repack.cpp)."""
    if build and not build.get("REPACK", 0):
        return ()
    if arch in ("x86_64", "amd64"):
        return ("Q4_0", "Q4_K", "IQ4_NL") if "avx2" in cpu_flags else ()
    if arch in ("aarch64", "arm64"):
        out: list[str] = []
        if "asimddp" in cpu_flags:
            out += ["Q4_0", "IQ4_NL"]
        if "i8mm" in cpu_flags:
            out += ["Q4_K"]
        return tuple(out)
    return ()


def profile_from_measurement(
    facts: ModelFacts,
    *,
    prompt_tps: float,
    gen_tps: float,
    n_prompt: int,
    n_gen: int,
    threads: int,
    cores: int,
    ram_bytes: int,
    arch: str,
    cpu_features: tuple[str, ...],
    repack_types: tuple[str, ...],
    description: str,
) -> DeviceProfile:
    """Invert the speed model: effective bandwidth and FLOP/s that reproduce the measurement."""
    n_past = n_prompt + n_gen / 2
    bytes_per_token = facts.read_bytes_per_token + _kv_bytes_per_position(facts, "f16") * n_past
    seconds = 1.0 / gen_tps - LOCAL_LAYER_OVERHEAD_S * facts.n_layers
    bandwidth = bytes_per_token / max(seconds, 1e-6)
    flops_per_token = 2.0 * facts.matmul_params_per_token + _attn_flops(facts, n_prompt / 2)
    prompt_flops = flops_per_token * prompt_tps * cores / max(1, threads)
    return DeviceProfile(
        name="local", description=description, arch=arch, cores=cores, ram_bytes=ram_bytes,
        cpu_features=cpu_features, gen_bandwidth=bandwidth, bw_saturation_threads=threads,
        prompt_flops=prompt_flops, layer_overhead_s=LOCAL_LAYER_OVERHEAD_S,
        repack_types=repack_types,
        sources=f"calibrated on this machine: {facts.name} {facts.quant}, {threads} threads, "
        f"pp{n_prompt} {prompt_tps:.1f} tok/s, tg{n_gen} {gen_tps:.1f} tok/s",
    )
