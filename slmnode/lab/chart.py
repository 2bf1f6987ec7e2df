"""Quality vs speed PNG for a quant comparison (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

from slmnode.lab.compare import CompareReport
from slmnode.plotting import pyplot


def plot_compare(report: CompareReport, path: str | Path) -> Path:
    """Left: mean KL divergence vs generation tok/s; right: perplexity vs file size. Returns ``path``."""
    plt = pyplot()
    path = Path(path)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in report.rows:
        color = "black" if r.is_reference else None
        if r.generation_tps is not None:
            kld = max(r.kld_mean, 1e-5)
            ax1.scatter(r.generation_tps, kld, s=40 + r.size_bytes / 4e6, color=color, alpha=0.8)
            name = f"{r.label} (reference)" if r.is_reference else r.label
            ax1.annotate(name, (r.generation_tps, kld), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax2.scatter(r.size_bytes / 1e6, r.perplexity, color=color, alpha=0.8)
        ax2.annotate(r.label, (r.size_bytes / 1e6, r.perplexity), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax1.set_yscale("log")
    ax1.set_xlabel("generation tok/s (this box)")
    ax1.set_ylabel("mean KL divergence vs reference (log; lower is better)")
    ax1.set_title("quality vs speed")
    ax2.set_xlabel("file size (MB)")
    ax2.set_ylabel(f"perplexity (ctx {report.ctx}; lower is better)")
    ax2.set_title("quality vs size")
    fig.suptitle(f"{Path(report.reference).name} · {report.corpus} · {report.scored_tokens} scored tokens", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
