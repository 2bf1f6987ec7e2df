"""Statistics, result models and report rendering of the bench, on hand-made results (no engine)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from slmnode.bench.report import print_report
from slmnode.bench.results import BenchReport, JobResult, JobRun, StepRecord, TargetResult, make_metric
from slmnode.bench.runner import best_settings
from slmnode.bench.stats import speedup, summarize


@pytest.mark.parametrize(("values", "median", "lo", "hi"), [
    ([3.0], 3.0, 3.0, 3.0),
    ([5.0, 1.0, 3.0], 3.0, 1.0, 5.0),
    ([4.0, 1.0, 2.0, 3.0], 2.5, 1.0, 4.0),  # even count: mean of the middle two
])
def test_summarize_gives_median_min_max(values: list[float], median: float, lo: float, hi: float) -> None:
    s = summarize(values)
    assert (s.median, s.min, s.max, s.n) == (median, lo, hi, len(values))


def test_summarize_refuses_no_samples() -> None:
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.parametrize(("a", "b", "higher", "expected"), [
    (40.0, 20.0, True, 2.0),   # tok/s: twice as fast
    (1.0, 2.0, False, 2.0),    # seconds: half the time is 2x better
    (2.0, 1.0, False, 0.5),
    (5.0, 0.0, True, None),    # nothing to compare with
])
def test_speedup_respects_the_metric_direction(a: float, b: float, higher: bool, expected: float | None) -> None:
    assert speedup(a, b, higher_is_better=higher) == expected


def _target(label: str, tg: list[float], ttft: list[float], *, kind: str = "node", job_wall: float = 2.0) -> TargetResult:
    steps = [StepRecord(kind="tool", name="lookup_customer", wall_s=0.5, prompt_tokens=1200, prompt_processed=1200,
                        completion_tokens=20, valid=True),
             StepRecord(kind="final", name="final", wall_s=0.5, prompt_tokens=1300, prompt_processed=100,
                        completion_tokens=40, valid=True)]
    job = JobResult(name="triage", title="Triage", runs=[JobRun(wall_s=job_wall, steps=steps, valid=True, correct=False,
                                                                problems=["ticket_id wrong"])])
    return TargetResult(label=label, kind=kind, url="http://127.0.0.1:1", model="m",  # type: ignore[arg-type]
                        settings={"threads": 2, "ctx": 2048},
                        metrics={"tg128": make_metric("tg128", tg, 128), "ttft_s": make_metric("ttft_s", ttft)},
                        jobs=[job], errors={"pp512": "skipped: needs a context of at least 600 (ctx 512)"})


def test_report_json_round_trips_with_medians() -> None:
    report = BenchReport(repeats=3, targets=[_target("a", [40.0, 44.0, 42.0], [0.2, 0.1, 0.3])])
    data = json.loads(report.model_dump_json())
    m = data["targets"][0]["metrics"]["tg128"]
    assert (m["median"], m["min"], m["max"], m["tokens"]) == (42.0, 40.0, 44.0, 128)
    job = data["targets"][0]["jobs"][0]
    assert (job["steps"], job["tokens"], job["all_valid"], job["all_correct"]) == (2, {"prompt": 2500, "completion": 60}, True, False)
    assert BenchReport.model_validate_json(report.model_dump_json()) == report


def test_report_renders_tables_ratios_and_skips() -> None:
    report = BenchReport(repeats=3, targets=[_target("fast", [40.0, 44.0, 42.0], [0.2, 0.1, 0.3], job_wall=2.0),
                                             _target("slow", [20.0, 22.0, 21.0], [0.4, 0.4, 0.4], kind="endpoint",
                                                     job_wall=3.0)])
    console = Console(record=True, width=200)
    print_report(report, console)
    text = console.export_text()
    assert "42.0 (40.0–44.0)" in text  # median (min–max)
    assert "2.00×" in text  # tg128: 42 vs 21
    assert "1.50×" in text  # agent job wall: 2 s vs 3 s
    assert "pp512 not measured" in text and "ctx 512" in text
    assert "correct" in text and "yes" in text


def test_best_setting_is_named_only_for_sweeps() -> None:
    a, b = _target("t1", [20.0], [0.5]), _target("t2", [30.0], [0.6])
    assert best_settings([a, b]) == {"tg128": "t2", "ttft_s": "t1"}
    assert best_settings([a]) == {}
