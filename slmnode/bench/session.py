"""A bench run as the CLI asks for it: options -> what to measure, and what to keep afterwards.

Plain functions (:func:`prepare`, :func:`finish`) so the same run can be driven from Python; the
``slmnode bench`` command only parses options, shows progress and prints the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from slmnode.bench.agent_jobs import JOBS
from slmnode.bench.client import Endpoint, parse_endpoint
from slmnode.bench.results import WORKLOADS, BenchReport
from slmnode.bench.runner import BenchPlan, NodeConfig, plan_units
from slmnode.config import Settings
from slmnode.errors import BenchError, ConfigError

WORKLOAD_NAMES = WORKLOADS


def int_list(value: str | None, what: str) -> list[int | None]:
    """``"1,2,4"`` -> ``[1, 2, 4]``; nothing -> ``[None]`` (the node's default)."""
    if not value:
        return [None]
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"--{what} takes comma-separated integers, e.g. --{what} 1,2,4; got '{value}'") from exc
    if not out or any(v < 1 for v in out):
        raise ConfigError(f"--{what} values must be positive integers; got '{value}'")
    return list(out)


def names(value: str | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    if not value:
        return allowed
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in chosen if n not in allowed]
    if unknown:
        raise ConfigError(f"unknown {what}: {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return chosen


@dataclass(frozen=True)
class BenchRun:
    plan: BenchPlan
    configs: list[NodeConfig]
    endpoints: list[Endpoint] | None  # measure a running server instead of starting nodes
    vs: list[Endpoint]
    total_units: int  # progress steps the run will report


def prepare(settings: Settings, models: tuple[str, ...] = (), threads: str | None = None,
            ctx_sizes: str | None = None, *, endpoint: str | None = None, vs_urls: tuple[str, ...] = (),
            api_key: str | None = None, repeats: int = 3, warmup: int = 1, only: str | None = None,
            job_names: str | None = None, tool_choice: str = "forced", protocol: str = "openai", seed: int = 0,
            label: str = "") -> BenchRun:
    """Validate the options and expand sweeps into node configurations."""
    workloads = names(only, WORKLOAD_NAMES, "workload")
    jobs = names(job_names, tuple(JOBS), "agent job")
    thread_list, ctx_list = int_list(threads, "threads"), int_list(ctx_sizes, "ctx")
    model_list: list[str | None] = list(models) or [settings.model]
    if settings.ctx and ctx_list == [None] and not endpoint:
        ctx_list = [settings.ctx]
    if thread_list == [None]:
        thread_list = [settings.threads]
    configs = [NodeConfig(m, t, c) for m in model_list for t in thread_list for c in ctx_list]
    if endpoint and (len(configs) > 1 or threads or ctx_sizes):
        raise ConfigError("--threads/--ctx sweeps and several --model need a node the bench starts; drop --endpoint")
    if vs_urls and len(configs) > 1:
        raise ConfigError("--vs compares one setting with other servers; run the sweep without --vs")
    if endpoint and "cold" in workloads:
        workloads = tuple(w for w in workloads if w != "cold")  # a running server has no cold start to measure
    plan = BenchPlan(repeats=repeats, warmup=warmup, workloads=workloads, jobs=jobs,
                     tool_choice=tool_choice, protocol=protocol, seed=seed, label=label)  # type: ignore[arg-type]
    endpoints = [parse_endpoint(endpoint, api_key)] if endpoint else None
    vs = [parse_endpoint(u, api_key) for u in vs_urls]
    total = plan_units(plan, 0 if endpoints else len(configs), 1 + len(vs))
    if not endpoints:
        total += plan_units(plan, 0, 1) * (len(configs) - 1)
    return BenchRun(plan, configs, endpoints, vs, total)


def finish(report: BenchReport, *, models: tuple[str, ...] = (), predict_for: tuple[str, ...] = (),
           keep_history: bool = True) -> None:
    """Device predictions, the history row; raises :class:`BenchError` when nothing could be measured."""
    if predict_for:
        from slmnode.bench.predict import predict_jobs, resolve_model_info

        target = report.targets[0]
        info = resolve_model_info(target.settings.get("model") if target.kind == "node"
                                  else (models[0] if models else target.model))
        for device in predict_for:
            report.predictions.append(predict_jobs(target, info, device, ctx=int(target.settings.get("ctx") or 4096)))
    if keep_history:
        from slmnode.bench.history import BenchHistory

        with BenchHistory() as history:
            history.add(report)


def check_measured(report: BenchReport) -> None:
    failed = [t for t in report.targets if not t.metrics and not any(j.runs for j in t.jobs)]
    if failed:
        raise BenchError(f"nothing could be measured on {failed[0].label}: {next(iter(failed[0].errors.values()), '')}")
