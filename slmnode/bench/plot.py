"""A PNG chart of a bench report: one panel per metric, one bar per target (the median), with a
min–max whisker over the repeats; agent-job wall times in a last panel."""

from __future__ import annotations

from pathlib import Path

from slmnode.bench.report import metric_names
from slmnode.bench.results import METRICS, BenchReport, Metric
from slmnode.plotting import pyplot


def _panels(report: BenchReport) -> list[tuple[str, str, list[tuple[str, Metric | None]]]]:
    panels = []
    for name in metric_names(report.targets):
        spec = METRICS[name]
        panels.append((spec.label, spec.unit, [(t.label, t.metrics.get(name)) for t in report.targets]))
    jobs = sorted({j.name for t in report.targets for j in t.jobs})
    for job in jobs:
        bars = []
        for t in report.targets:
            j = next((x for x in t.jobs if x.name == job), None)
            bars.append((t.label, j.wall_s if j else None))
        panels.append((f"agent job '{job}' wall time", "s", bars))
    return panels


def plot_report(report: BenchReport, path: Path) -> Path:
    """Write the chart to ``path`` (PNG) and return it."""
    plt = pyplot()
    panels = _panels(report)
    if not panels:
        raise ValueError("nothing to plot: the report has no metrics")
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels = [t.label for t in report.targets]
    for ax, (title, unit, bars) in zip(axes.flat, panels):
        for i, (label, m) in enumerate(bars):
            if m is None:
                continue
            ax.bar(i, m.median, color=colors[i % len(colors)], label=label)
            ax.errorbar(i, m.median, yerr=[[m.median - m.min], [m.max - m.median]], color="black", capsize=4)
            ax.annotate(f"{m.median:.3g}", (i, m.median), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 3), textcoords="offset points")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(unit)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels([str(i + 1) for i in range(len(labels))])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[i % len(colors)]) for i in range(len(labels))]
    fig.legend(handles, [f"{i + 1}: {lab}" for i, lab in enumerate(labels)], loc="lower center",
               ncol=min(2, len(labels)), fontsize=8, frameon=False)
    machine = report.machine
    fig.suptitle(f"slmnode bench — {machine.get('arch', '')}, {machine.get('cpus', '')} CPUs; median of "
                 f"{report.repeats}, whiskers min–max", fontsize=10)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * ((len(labels) + 1) // 2), 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
