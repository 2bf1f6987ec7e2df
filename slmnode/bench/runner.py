"""The bench itself: start nodes (or take endpoints), run the workloads interleaved across the
targets of a group (same prompts, same machine state), and collect a :class:`BenchReport`.

Workloads (each: ``warmup`` unrecorded rounds, then ``repeats`` recorded rounds):
- cold: process start → first streamed token of a fresh ``slmnode serve`` (one launch per round);
- pp128 / pp512: a fresh passage of ~128 / ~512 tokens, ``max_tokens`` 1, non-streamed;
- tg128: a fresh ~16-token passage, 128 tokens greedy, streamed (client rate) and, where the server
  reports ``timings``, once more non-streamed (server rate);
- ttft: a streamed chat request with the ~1k-token agent system prompt: fresh (a new first line each
  time, nothing cached) and as agents send it (system prompt cached, new user message);
- agent: the multi-step jobs of :mod:`slmnode.bench.agent_jobs`.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from slmnode import __version__
from slmnode.bench.agent_jobs import JOBS, system_prompt
from slmnode.bench.agent_runner import ToolChoice, run_job
from slmnode.bench.client import BenchClient, Endpoint
from slmnode.bench.corpus import Passages
from slmnode.bench.launch import NodeLaunch, launch_node
from slmnode.bench.protocols import WireProtocol
from slmnode.bench.results import WORKLOADS, BenchReport, JobResult, TargetResult, make_metric
from slmnode.errors import BenchError

Progress = Callable[[str], None]  # called once per finished unit of work, with what comes next
TG_TOKENS = 128
# Context a workload needs (prompt + generation), to skip it cleanly on a node with a smaller one.
_CTX_NEEDED = {"pp128": 160, "pp512": 600, "tg128": 176, "ttft": 1400, "agent": 2048}


@dataclass(frozen=True)
class NodeConfig:
    """One setting of a node the bench starts itself (``None``: the node's own default)."""

    model: str | None = None
    threads: int | None = None
    ctx: int | None = None


@dataclass(frozen=True)
class BenchPlan:
    repeats: int = 3
    warmup: int = 1
    workloads: tuple[str, ...] = WORKLOADS
    jobs: tuple[str, ...] = tuple(JOBS)
    tool_choice: ToolChoice = "forced"
    protocol: WireProtocol = "openai"
    seed: int = 0
    label: str = ""

    @property
    def rounds(self) -> int:
        return self.warmup + self.repeats


@dataclass
class _Live:
    result: TargetResult
    client: BenchClient
    launch: NodeLaunch | None = None
    has_timings: bool = False
    samples: dict[str, list[float]] = field(default_factory=dict)
    tokens: dict[str, list[float]] = field(default_factory=dict)

    def add(self, metric: str, value: float, tokens: float | None = None) -> None:
        self.samples.setdefault(metric, []).append(value)
        if tokens is not None:
            self.tokens.setdefault(metric, []).append(tokens)

    def fits(self, workload: str) -> bool:
        ctx = self.result.settings.get("ctx")
        if isinstance(ctx, int) and ctx < _CTX_NEEDED.get(workload, 0):
            self.result.errors[workload] = f"skipped: needs a context of at least {_CTX_NEEDED[workload]} (ctx {ctx})"
            return False
        return workload not in self.result.errors

    def close(self) -> None:
        self.client.close()
        if self.launch is not None:
            self.launch.stop()


def machine() -> dict[str, object]:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return {"arch": platform.machine(), "cpus": os.cpu_count(), "ram_gib": round(mem / 2**30, 1),
            "system": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


def plan_units(plan: BenchPlan, n_node_configs: int, n_targets: int) -> int:
    """How many progress steps a run has (for a progress bar)."""
    per_target = sum(plan.rounds * (2 if w in ("ttft",) else 1) for w in plan.workloads if w not in ("cold", "agent"))
    per_target += plan.rounds * len(plan.jobs) if "agent" in plan.workloads else 0
    cold = n_node_configs * (plan.rounds if "cold" in plan.workloads else 1)
    return cold + per_target * n_targets


def _node_label(launch: NodeLaunch) -> str:
    return f"slmnode {launch.model} t{launch.threads} c{launch.ctx}"


def _start_node(cfg: NodeConfig, plan: BenchPlan, tick: Progress) -> tuple[_Live, list[float], list[float]]:
    """Launch the node ``rounds`` times when measuring cold start (keep the last one running)."""
    launches = plan.rounds if "cold" in plan.workloads else 1
    cold: list[float] = []
    load: list[float] = []
    launch: NodeLaunch | None = None
    for i in range(launches):
        tick(f"cold start {i + 1}/{launches}")
        launch = launch_node(cfg.model, cfg.threads, cfg.ctx)
        if i >= launches - plan.repeats or launches == 1:
            cold.append(launch.cold_start_s)
            load.append(launch.load_s)
        if i < launches - 1:
            launch.stop()
    assert launch is not None
    result = TargetResult(label=_node_label(launch), kind="node", url=launch.base_url, model=launch.model,
                          settings={"threads": launch.threads, "ctx": launch.ctx, "model": cfg.model or "default"})
    live = _Live(result, BenchClient(Endpoint(launch.base_url, launch.model)), launch)
    if "cold" in plan.workloads:
        live.samples["cold_start_s"] = cold
    live.samples["model_load_s"] = load
    return live, cold, load


def _endpoint_target(ep: Endpoint) -> _Live:
    client = BenchClient(ep)
    label = ep.base_url.split("://", 1)[-1] + f" ({client.model.rsplit('/', 1)[-1][:40]})"  # servers may name a path
    return _Live(TargetResult(label=label, kind="endpoint", url=ep.base_url, model=client.model), client)


def _calibrate(targets: list[_Live], passages: Passages) -> None:
    """Tokens per word of the corpus on the first target's model; learn who reports ``timings``."""
    text = passages.take(270)
    n_words = len(text.split())
    for i, t in enumerate(targets):
        call = t.client.complete(text, 1, temperature=0)
        t.has_timings = bool(call.timings and "prompt_per_second" in call.timings)
        if i == 0 and call.prompt_tokens:
            passages.tokens_per_word = call.prompt_tokens / n_words


def _each(targets: list[_Live], workload: str, fn: Callable[[_Live], None], tick: Progress, what: str) -> None:
    for t in targets:
        tick(f"{what} · {t.result.label}")
        if not t.fits(workload):
            continue
        try:
            fn(t)
        except BenchError as exc:
            t.result.errors[workload] = exc.message


def _run_speed(targets: list[_Live], plan: BenchPlan, passages: Passages, tick: Progress) -> None:
    for n in (128, 512):
        name = f"pp{n}"
        if name not in plan.workloads:
            continue
        for r in range(plan.rounds):
            text = passages.take(n)
            record = r >= plan.warmup

            def pp(t: _Live, text: str = text, record: bool = record, name: str = name) -> None:
                call = t.client.complete(text, 1, temperature=0)
                processed = int((call.timings or {}).get("prompt_n", call.prompt_tokens))
                if record:
                    t.add(name, processed / call.wall_s, processed)
                    if call.timings and call.timings.get("prompt_per_second"):
                        t.add(f"{name}_server", float(call.timings["prompt_per_second"]), processed)

            _each(targets, name, pp, tick, f"{name} round {r + 1}/{plan.rounds}")

    if "tg128" in plan.workloads:
        for r in range(plan.rounds):
            streamed, plain, record = passages.take(16), passages.take(16), r >= plan.warmup

            def tg(t: _Live, streamed: str = streamed, plain: str = plain, record: bool = record) -> None:
                s = t.client.stream_complete(streamed, TG_TOKENS, temperature=0)
                server_tps = (s.timings or {}).get("predicted_per_second")
                if server_tps is None and t.has_timings:
                    call = t.client.complete(plain, TG_TOKENS, temperature=0)
                    server_tps = (call.timings or {}).get("predicted_per_second")
                if record:
                    t.add("tg128", s.decode_tps, s.completion_tokens)
                    t.add("tg128_ttft_s", s.ttft_s)
                    if server_tps:
                        t.add("tg128_server", float(server_tps))

            _each(targets, "tg128", tg, tick, f"tg128 round {r + 1}/{plan.rounds}")

    if "ttft" in plan.workloads:
        system = system_prompt()
        for metric, fresh in (("ttft_fresh_s", True), ("ttft_s", False)):
            for r in range(plan.rounds):
                question = "In one sentence, what happens here? " + passages.take(24)
                sys_text = f"Session {plan.seed}-{r}-{time.time_ns()}.\n{system}" if fresh else system
                record = r >= plan.warmup

                def ttft(t: _Live, sys_text: str = sys_text, question: str = question, record: bool = record,
                         metric: str = metric) -> None:
                    msgs = [{"role": "system", "content": sys_text}, {"role": "user", "content": question}]
                    s = t.client.stream_chat(msgs, max_tokens=8, temperature=0)
                    if record:
                        t.add(metric, s.ttft_s, float(s.usage.get("prompt_tokens") or 0) or None)

                _each(targets, "ttft", ttft, tick, f"{metric.removesuffix('_s')} round {r + 1}/{plan.rounds}")


def _run_agent(targets: list[_Live], plan: BenchPlan, tick: Progress) -> None:
    for name in plan.jobs:
        job = JOBS[name]
        for t in targets:
            t.result.jobs.append(JobResult(name=job.name, title=job.title, runs=[]))
        for r in range(plan.rounds):
            for t in targets:
                tick(f"agent job {name} round {r + 1}/{plan.rounds} · {t.result.label}")
                res = next(j for j in t.result.jobs if j.name == name)
                if not t.fits("agent") or res.error:
                    continue
                try:
                    run = run_job(t.client, job, tool_choice=plan.tool_choice, protocol=plan.protocol)
                except BenchError as exc:
                    res.error = exc.message
                    continue
                if r >= plan.warmup:
                    res.runs.append(run)


def _finish(t: _Live) -> TargetResult:
    for name, values in t.samples.items():
        toks = t.tokens.get(name)
        t.result.metrics[name] = make_metric(name, values, sorted(toks)[len(toks) // 2] if toks else None)
    return t.result


def run_group(targets: list[_Live], plan: BenchPlan, tick: Progress) -> list[TargetResult]:
    passages = Passages(seed=plan.seed)
    try:
        _calibrate(targets, passages)
        _run_speed(targets, plan, passages, tick)
        if "agent" in plan.workloads:
            _run_agent(targets, plan, tick)
        return [_finish(t) for t in targets]
    finally:
        for t in targets:
            t.close()


def best_settings(targets: list[TargetResult]) -> dict[str, str]:
    """The best node setting per headline metric (only when several node settings were measured)."""
    nodes = [t for t in targets if t.kind == "node"]
    if len(nodes) < 2:
        return {}
    best: dict[str, str] = {}
    for metric in ("tg128", "pp512", "pp128", "ttft_s", "cold_start_s"):
        have = [t for t in nodes if metric in t.metrics]
        if have:
            pick = (max if have[0].metrics[metric].higher_is_better else min)(have, key=lambda t: t.metrics[metric].median)
            best[metric] = pick.label
    return best


def run_bench(plan: BenchPlan, *, configs: list[NodeConfig] | None = None, endpoints: list[Endpoint] | None = None,
              vs: list[Endpoint] | None = None, tick: Progress | None = None) -> BenchReport:
    """Measure every node config (each on its own, one after another) or the given endpoints;
    ``vs`` endpoints are measured interleaved with the first group, for pair-by-pair ratios."""
    tick = tick or (lambda _what: None)
    t0 = time.perf_counter()
    report = BenchReport(label=plan.label, machine=machine(), version=__version__, repeats=plan.repeats,
                         warmup=plan.warmup, workloads=list(plan.workloads), tool_choice=plan.tool_choice,
                         protocol=plan.protocol)
    extra = [_endpoint_target(ep) for ep in (vs or [])]
    if endpoints:
        report.targets += run_group([_endpoint_target(ep) for ep in endpoints] + extra, plan, tick)
    else:
        for i, cfg in enumerate(configs or [NodeConfig()]):
            live, _cold, _load = _start_node(cfg, plan, tick)
            report.targets += run_group([live] + (extra if i == 0 else []), plan, tick)
    report.best = best_settings(report.targets)
    report.duration_s = time.perf_counter() - t0
    return report
