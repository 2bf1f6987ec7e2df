"""Render a :class:`BenchReport` for people: rich tables (metrics, agent jobs, ratios pair by pair,
best setting, predictions) and a comparison of two runs from the history."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from slmnode.bench.results import METRICS, BenchReport, Metric, TargetResult
from slmnode.bench.stats import speedup


def fmt_value(value: float, unit: str) -> str:
    if unit == "tok/s":
        return f"{value:.1f}"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def fmt_metric(m: Metric) -> str:
    if m.summary.n == 1:
        return fmt_value(m.median, m.unit)
    return f"{fmt_value(m.median, m.unit)} [dim]({fmt_value(m.min, m.unit)}–{fmt_value(m.max, m.unit)})[/dim]"


def metric_names(targets: list[TargetResult]) -> list[str]:
    present = {n for t in targets for n in t.metrics}
    return [n for n in METRICS if n in present]


def metrics_table(report: BenchReport) -> Table:
    table = Table(title=f"slmnode bench: median (min–max) of {report.repeats} repeat(s) after {report.warmup} warm-up",
                  title_justify="left")
    table.add_column("metric")
    table.add_column("unit")
    for t in report.targets:
        table.add_column(t.label, justify="right")
    for name in metric_names(report.targets):
        spec = METRICS[name]
        row = [spec.label, spec.unit]
        for t in report.targets:
            m = t.metrics.get(name)
            row.append(fmt_metric(m) if m else "[dim]–[/dim]")
        table.add_row(*row)
    return table


def jobs_table(report: BenchReport) -> Table | None:
    rows = [(t, j) for t in report.targets for j in t.jobs]
    if not rows:
        return None
    table = Table(title=f"agent jobs (tool_choice {report.tool_choice}, protocol {report.protocol})", title_justify="left")
    for col in ("target", "job", "wall s", "steps", "prompt tok", "gen tok", "valid", "correct"):
        table.add_column(col, justify="right" if col not in ("target", "job") else "left")
    for t, j in rows:
        if j.error or not j.runs:
            table.add_row(t.label, j.name, f"[red]{j.error or 'not run'}[/red]", "", "", "", "", "")
            continue
        wall = j.wall_s
        assert wall is not None
        table.add_row(t.label, j.name, fmt_metric(wall), str(j.steps), str(j.tokens["prompt"]),
                      str(j.tokens["completion"]), "[green]yes[/green]" if j.all_valid else "[red]no[/red]",
                      "yes" if j.all_correct else "[yellow]no[/yellow]")
    return table


def ratios_table(report: BenchReport) -> Table | None:
    """First target vs each other: > 1 means the first one is better (faster or quicker)."""
    if len(report.targets) < 2:
        return None
    base = report.targets[0]
    table = Table(title=f"ratios: {base.label} vs each (>1 = {base.label} better)", title_justify="left")
    table.add_column("metric")
    others = report.targets[1:]
    for o in others:
        table.add_column(f"vs {o.label}", justify="right")
    names = metric_names(report.targets)
    for name in names:
        if name not in base.metrics:
            continue
        row = [METRICS[name].label]
        for o in others:
            r = None
            if name in o.metrics:
                r = speedup(base.metrics[name].median, o.metrics[name].median,
                            higher_is_better=METRICS[name].higher_is_better)
            row.append(f"{r:.2f}×" if r is not None else "[dim]–[/dim]")
        table.add_row(*row)
    for j in base.jobs:
        if j.wall_s is None:
            continue
        row = [f"agent job {j.name} wall time"]
        for o in others:
            oj = next((x for x in o.jobs if x.name == j.name), None)
            r = speedup(j.wall_s.median, oj.wall_s.median, higher_is_better=False) if oj and oj.wall_s else None
            row.append(f"{r:.2f}×" if r is not None else "[dim]–[/dim]")
        table.add_row(*row)
    return table


def predictions_table(report: BenchReport) -> Table | None:
    if not report.predictions:
        return None
    table = Table(title="predicted agent-job wall time on another device", title_justify="left")
    for col in ("device", "job", "steps", "prompt tok", "gen tok", "measured s", "predicted s", "with cache s"):
        table.add_column(col, justify="left" if col in ("device", "job") else "right")
    for p in report.predictions:
        for j in p.jobs:
            table.add_row(f"{p.device} ({p.prompt_tps:.0f} / {p.gen_tps:.1f} tok/s)", j.job, str(j.steps),
                          str(j.prompt_tokens), str(j.completion_tokens), f"{j.measured_s:.2f}",
                          f"{j.predicted_s:.1f}", f"{j.predicted_cached_s:.1f}")
    return table


def print_report(report: BenchReport, console: Console) -> None:
    console.print(metrics_table(report))
    for extra in (jobs_table(report), ratios_table(report), predictions_table(report)):
        if extra is not None:
            console.print(extra)
    for metric, label in report.best.items():
        console.print(f"best setting for {METRICS[metric].label}: [bold]{label}[/bold]", highlight=False)
    for t in report.targets:
        for workload, why in t.errors.items():
            console.print(f"[yellow]{t.label}: {workload} not measured[/yellow]: {why}", highlight=False)
    if report.id is not None:
        console.print(f"saved as run {report.id} (slmnode bench history)", style="dim", highlight=False)


def compare_table(a: BenchReport, b: BenchReport, rows: list[tuple[str, str, float, float, float | None]]) -> Table:
    table = Table(title=f"run {a.id} vs run {b.id} (ratio >1 = run {b.id} better)", title_justify="left")
    for col in ("target", "metric", f"run {a.id}", f"run {b.id}", "ratio"):
        table.add_column(col, justify="left" if col in ("target", "metric") else "right")
    for target, metric, va, vb, r in rows:
        unit = METRICS[metric].unit if metric in METRICS else "s"
        table.add_row(target, METRICS[metric].label if metric in METRICS else metric, fmt_value(va, unit),
                      fmt_value(vb, unit), f"{r:.2f}×" if r is not None else "–")
    return table
