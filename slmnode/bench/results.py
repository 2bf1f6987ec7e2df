"""What a bench run produces: metrics per target, agent-job records, and the whole report (JSON-able)."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from slmnode.bench.stats import Summary, summarize


class MetricSpec(BaseModel):
    name: str
    label: str
    unit: str
    higher_is_better: bool


# Every metric a bench can report, in display order.
METRICS: dict[str, MetricSpec] = {m.name: m for m in [
    MetricSpec(name="cold_start_s", label="cold start (process → first token)", unit="s", higher_is_better=False),
    MetricSpec(name="model_load_s", label="model load", unit="s", higher_is_better=False),
    MetricSpec(name="pp128", label="prompt pp128 (client)", unit="tok/s", higher_is_better=True),
    MetricSpec(name="pp128_server", label="prompt pp128 (server timings)", unit="tok/s", higher_is_better=True),
    MetricSpec(name="pp512", label="prompt pp512 (client)", unit="tok/s", higher_is_better=True),
    MetricSpec(name="pp512_server", label="prompt pp512 (server timings)", unit="tok/s", higher_is_better=True),
    MetricSpec(name="tg128", label="generation tg128 (client, streamed)", unit="tok/s", higher_is_better=True),
    MetricSpec(name="tg128_server", label="generation tg128 (server timings)", unit="tok/s", higher_is_better=True),
    MetricSpec(name="tg128_ttft_s", label="tg128 time to first token", unit="s", higher_is_better=False),
    MetricSpec(name="ttft_s", label="agent TTFT, system prompt cached", unit="s", higher_is_better=False),
    MetricSpec(name="ttft_fresh_s", label="agent TTFT, fresh ~1k-token prompt", unit="s", higher_is_better=False),
]}

WORKLOADS = ("cold", "pp128", "pp512", "tg128", "ttft", "agent")


class Metric(BaseModel):
    """One metric's samples (one per measured repeat) and their summary."""

    name: str
    unit: str
    higher_is_better: bool
    values: list[float]
    tokens: float | None = None  # median token count behind a rate (e.g. 509 prompt tokens for pp512)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def median(self) -> float:
        return self.summary.median

    @computed_field  # type: ignore[prop-decorator]
    @property
    def min(self) -> float:
        return self.summary.min

    @computed_field  # type: ignore[prop-decorator]
    @property
    def max(self) -> float:
        return self.summary.max

    @property
    def summary(self) -> Summary:
        return summarize(self.values)


def make_metric(name: str, values: list[float], tokens: float | None = None) -> Metric:
    spec = METRICS[name]
    return Metric(name=name, unit=spec.unit, higher_is_better=spec.higher_is_better, values=values, tokens=tokens)


class StepRecord(BaseModel):
    """One model call inside an agent job."""

    kind: Literal["tool", "final"]
    name: str  # the tool the step must call, or "final"
    wall_s: float
    prompt_tokens: int = 0
    prompt_processed: int | None = None  # prompt tokens not served from the prefix cache (server timings)
    completion_tokens: int = 0
    valid: bool = False
    problems: list[str] = Field(default_factory=list)


class JobRun(BaseModel):
    """One run of one agent job."""

    wall_s: float
    steps: list[StepRecord]
    valid: bool  # every step's output validated against its schema
    correct: bool  # the final answer also agrees with what the tools returned
    problems: list[str] = Field(default_factory=list)

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.steps)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.steps)


class JobResult(BaseModel):
    name: str
    title: str
    runs: list[JobRun]
    error: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def wall_s(self) -> Metric | None:
        if not self.runs:
            return None
        return Metric(name=f"job:{self.name}", unit="s", higher_is_better=False, values=[r.wall_s for r in self.runs])

    @computed_field  # type: ignore[prop-decorator]
    @property
    def steps(self) -> int:
        return max((len(r.steps) for r in self.runs), default=0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tokens(self) -> dict[str, int]:
        run = self.runs[0] if self.runs else None
        return {"prompt": run.prompt_tokens if run else 0, "completion": run.completion_tokens if run else 0}

    @computed_field  # type: ignore[prop-decorator]
    @property
    def all_valid(self) -> bool:
        return bool(self.runs) and self.error is None and all(r.valid for r in self.runs)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def all_correct(self) -> bool:
        return bool(self.runs) and self.error is None and all(r.correct for r in self.runs)


class TargetResult(BaseModel):
    """Everything measured on one target: a node the bench started, or an endpoint it was given."""

    label: str
    kind: Literal["node", "endpoint"]
    url: str
    model: str
    settings: dict[str, Any] = Field(default_factory=dict)  # threads, ctx, model path (node targets)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    jobs: list[JobResult] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict)  # workload -> why it could not be measured


class JobPrediction(BaseModel):
    job: str
    steps: int
    prompt_tokens: int
    prompt_processed: int
    completion_tokens: int
    measured_s: float
    predicted_s: float  # every prompt token evaluated (no prefix cache)
    predicted_cached_s: float  # only the prompt tokens the measured server did not take from its cache


class Prediction(BaseModel):
    device: str
    target: str
    prompt_tps: float
    gen_tps: float
    jobs: list[JobPrediction]


class BenchReport(BaseModel):
    id: int | None = None
    started_at: float = Field(default_factory=time.time)
    duration_s: float = 0.0
    label: str = ""
    machine: dict[str, Any] = Field(default_factory=dict)
    version: str = ""
    repeats: int = 3
    warmup: int = 1
    workloads: list[str] = Field(default_factory=lambda: list(WORKLOADS))
    tool_choice: str = "forced"
    protocol: str = "openai"  # the wire format the agent jobs spoke (openai, anthropic, responses)
    targets: list[TargetResult] = Field(default_factory=list)
    best: dict[str, str] = Field(default_factory=dict)  # metric -> target label (sweeps)
    predictions: list[Prediction] = Field(default_factory=list)
