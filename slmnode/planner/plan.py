"""The feasibility matrix and a recommendation for a goal.

For each (model, quant): RAM at the context, predicted pp512 and tg128 tok/s, whether it fits
(in RAM / only with swap / not at all) and how suitable it is for agent work. Thresholds are
stated where they are used so a reader can disagree with them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from slmnode.catalog.families import FAMILIES, ModelFamily
from slmnode.catalog.quants import get_quant
from slmnode.errors import ConfigError
from slmnode.planner.fit import fits as fit_verdict
from slmnode.planner.memory import estimate_ram
from slmnode.planner.model_facts import ModelFacts, facts_from_family
from slmnode.planner.profiles import DeviceProfile, GiB
from slmnode.planner.speed import predict_speed

Goal = Literal["router", "chat", "agent"]
Fit = Literal["yes", "swap", "no"]

OS_RESERVE_BYTES = 1 * GiB  # kernel, system services and the slmnode server itself
DEFAULT_QUANTS = ("Q4_K_M", "Q8_0")
INTERACTIVE_TPS = 1.0  # below this a reply of 100 tokens takes minutes: "non-interactive"

# goal -> (min generation tok/s, min prompt tok/s, context to plan for)
GOALS: dict[str, tuple[float, float, int]] = {
    "router": (15.0, 100.0, 2048),  # one short structured answer per request, fast
    "chat": (5.0, 20.0, 4096),  # reading speed is ~5 tok/s
    "agent": (4.0, 30.0, 8192),  # long tool prompts; many steps per task
}
# Below these sizes the models cannot do the job at all, however fast they run (tool calling and
# multi-step plans need ~1B; grammar-constrained routing works from ~100M).
GOAL_MIN_PARAMS: dict[str, int] = {"router": 100_000_000, "chat": 400_000_000, "agent": 1_000_000_000}


@dataclass(frozen=True)
class PlanRow:
    model: str
    quant: str
    ctx: int
    ram_bytes: int
    prompt_tps: float
    gen_tps: float
    gen_tps_full_ctx: float
    fits: Fit
    interactive: bool
    agent: str  # good | slow | no
    params: int
    instruct: bool
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def usable_ram(profile: DeviceProfile, available_bytes: int | None = None) -> int:
    return available_bytes if available_bytes is not None else profile.ram_bytes - OS_RESERVE_BYTES


def _agent_suitability(gen_tps: float, prompt_tps: float, fits: Fit, instruct: bool) -> str:
    g, p, _ = GOALS["agent"]
    if fits == "no" or not instruct or gen_tps < INTERACTIVE_TPS:
        return "no"
    return "good" if gen_tps >= g and prompt_tps >= p and fits == "yes" else "slow"


def plan_row(
    facts: ModelFacts,
    profile: DeviceProfile,
    *,
    ctx: int,
    threads: int | None = None,
    kv_type: str = "f16",
    instruct: bool = True,
    available_bytes: int | None = None,
    swap_bytes: int = 2 * GiB,
) -> PlanRow:
    ram = estimate_ram(facts, ctx, kv_type=kv_type, repack_types=profile.repack_types).total
    speed = predict_speed(facts, profile, threads=threads, ctx=ctx, kv_type=kv_type)
    usable = usable_ram(profile, available_bytes)
    verdict = fit_verdict(ram, usable, swap_bytes=swap_bytes).verdict
    fits: Fit = "no" if verdict == "unknown" else verdict  # never unknown: ``usable`` is a number
    gen = speed.gen_tps
    if fits == "swap":  # pages stream from swap every token: the memory model no longer holds
        gen = min(gen, 0.5)
    return PlanRow(
        model=facts.name, quant=facts.quant, ctx=ctx, ram_bytes=ram, prompt_tps=speed.prompt_tps,
        gen_tps=gen, gen_tps_full_ctx=min(gen, speed.gen_tps_full_ctx), fits=fits,
        interactive=gen >= INTERACTIVE_TPS,
        agent=_agent_suitability(gen, speed.prompt_tps, fits, instruct),
        params=facts.params, instruct=instruct, exact=facts.exact,
    )


def model_plan(
    facts: ModelFacts,
    profile: DeviceProfile,
    *,
    ctx: int,
    threads: int | None = None,
    kv_type: str = "f16",
    instruct: bool = True,
    available_bytes: int | None = None,
) -> dict[str, Any]:
    """One model on one device: RAM breakdown, predicted speeds, fit and agent suitability."""
    row = plan_row(facts, profile, ctx=ctx, threads=threads, kv_type=kv_type, instruct=instruct,
                   available_bytes=available_bytes)
    ram = estimate_ram(facts, ctx, kv_type=kv_type, repack_types=profile.repack_types)
    speed = predict_speed(facts, profile, threads=threads, ctx=ctx, kv_type=kv_type)
    return {"device": profile.name, "model": facts.name, "quant": facts.quant, "ctx": ctx,
            "kv_type": kv_type, "threads": speed.threads, "ram_bytes": ram.total,
            "ram": ram.to_dict(), "prompt_tps": round(speed.prompt_tps, 2),
            "gen_tps": round(row.gen_tps, 2), "gen_tps_full_ctx": round(row.gen_tps_full_ctx, 2),
            "fits": row.fits, "interactive": row.interactive, "agent": row.agent,
            "exact_weights": facts.exact, "bytes_per_token": speed.bytes_per_token}


def feasibility_matrix(
    profile: DeviceProfile,
    *,
    ctx: int = 4096,
    quants: tuple[str, ...] = DEFAULT_QUANTS,
    families: list[ModelFamily] | None = None,
    threads: int | None = None,
    kv_type: str = "f16",
    available_bytes: int | None = None,
) -> list[PlanRow]:
    rows = []
    for fam in families or FAMILIES:
        for q in quants:
            facts = facts_from_family(fam, get_quant(q))
            rows.append(plan_row(facts, profile, ctx=min(ctx, fam.ctx_train), threads=threads,
                                 kv_type=kv_type, instruct=fam.instruct,
                                 available_bytes=available_bytes))
    return rows


@dataclass(frozen=True)
class Recommendation:
    goal: str
    model: str
    quant: str
    ctx: int
    threads: int
    row: PlanRow
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "row": self.row.to_dict()}


def recommend(
    profile: DeviceProfile,
    goal: str,
    *,
    threads: int | None = None,
    kv_type: str = "f16",
    available_bytes: int | None = None,
) -> Recommendation:
    """The largest instruct model that meets the goal's speed floor and fits without swap."""
    if goal not in GOALS:
        raise ConfigError(f"unknown goal {goal!r}; choose one of: {', '.join(GOALS)}")
    min_gen, min_pp, ctx = GOALS[goal]
    rows = feasibility_matrix(profile, ctx=ctx, quants=("Q4_K_M", "Q5_K_M", "Q8_0"),
                              families=[f for f in FAMILIES if f.instruct and f.verified],
                              threads=threads, kv_type=kv_type, available_bytes=available_bytes)
    fitting = [r for r in rows if r.fits == "yes"]
    if not fitting:
        raise ConfigError(f"no catalog model fits {profile.name} at ctx {ctx}; free RAM or use a "
                          "smaller --ctx")
    floor = f">= {min_gen:g} tok/s generation, >= {min_pp:g} tok/s prompt"
    capable = [r for r in fitting if r.params >= GOAL_MIN_PARAMS[goal]]
    good = [r for r in capable if r.gen_tps >= min_gen and r.prompt_tps >= min_pp]
    usable = [r for r in capable if r.gen_tps >= min_gen / 2]

    def quality(r: PlanRow) -> tuple[int, float, float]:  # parameters, then quant, then speed
        return (r.params, get_quant(r.quant).file_bpw, r.gen_tps)

    if good:
        best = max(good, key=quality)
        reason = f"largest model meeting the {goal} floor ({floor}) that fits in RAM without swap"
    elif usable:
        best = max(usable, key=lambda r: (r.gen_tps >= min_gen, r.params, r.gen_tps))
        reason = (f"nothing of >= {GOAL_MIN_PARAMS[goal] / 1e9:g}B meets the {goal} floor ({floor}); "
                  f"this one reaches {best.gen_tps:.1f} tok/s generation, {best.prompt_tps:.1f} prompt")
    else:
        best = max(fitting, key=lambda r: r.gen_tps)
        reason = f"nothing capable meets the {goal} floor ({floor}); this is the fastest model that fits"
    t = max(1, min(threads or profile.cores, profile.cores))
    return Recommendation(goal, best.model, best.quant, ctx, t, best, reason)
