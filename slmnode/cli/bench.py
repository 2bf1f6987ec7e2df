"""``slmnode bench``: measure the node (or any OpenAI-compatible endpoint) the way agents use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from slmnode.bench.results import WORKLOADS as WORKLOAD_NAMES
from slmnode.cli.common import err_console, handle_errors, print_json
from slmnode.config import load_settings


@click.group(invoke_without_command=True)
@click.option("--model", "-m", "models", multiple=True,
              help="Model name in the store or path to a .gguf; repeat to compare models (default: the node's model).")
@click.option("--threads", "-t", help="Threads, or a comma-separated sweep: 1,2,4.")
@click.option("--ctx", "-c", "ctx_sizes", help="Context size, or a comma-separated sweep: 512,2048.")
@click.option("--endpoint", "-e", metavar="URL",
              help="Measure a running OpenAI-compatible server instead of starting a node (URL[/v1][#model]).")
@click.option("--vs", "vs_urls", multiple=True, metavar="URL",
              help="Also measure this endpoint in the same run and print ratios pair by pair (repeatable).")
@click.option("--api-key", envvar="SLMNODE_BENCH_API_KEY", help="Bearer key for --endpoint/--vs servers.")
@click.option("--repeats", "-r", type=click.IntRange(1, 100), default=3, show_default=True, help="Measured repeats.")
@click.option("--warmup", type=click.IntRange(0, 10), default=1, show_default=True, help="Unrecorded warm-up rounds.")
@click.option("--only", help=f"Comma-separated workloads to run: {','.join(WORKLOAD_NAMES)} (default: all).")
@click.option("--jobs", "job_names", help="Comma-separated agent jobs (default: all; see 'slmnode bench jobs').")
@click.option("--tool-choice", type=click.Choice(["forced", "auto"]), default="forced", show_default=True,
              help="forced: each step names its tool (base models); auto: the model chooses (instruction-tuned).")
@click.option("--protocol", type=click.Choice(["openai", "anthropic", "responses"]), default="openai",
              show_default=True, help="Wire format of the agent jobs: chat completions, Anthropic Messages "
                                      "(/v1/messages) or OpenAI Responses (/v1/responses).")
@click.option("--predict-for", "predict_for", multiple=True, metavar="DEVICE",
              help="Predict each agent job's wall time on a planner device profile, e.g. pi4-8gb (repeatable).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG chart here.")
@click.option("--label", default="", help="A note stored with the run in the history.")
@click.option("--no-history", is_flag=True, help="Do not append this run to $SLMNODE_HOME/bench.db.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the prompt passages.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON on stdout.")
@click.pass_context
@handle_errors
def bench(click_ctx: click.Context, models: tuple[str, ...], threads: str | None, ctx_sizes: str | None,
          **kwargs: Any) -> None:
    """Measure cold start, prompt and generation speed, time to first token and whole agent jobs.

    By default starts `slmnode serve` itself on a free loopback port (so cold start is process
    start to first token), warms up, then repeats each workload and reports median (min–max).
    Every run is appended to the history (`slmnode bench history`).

    \b
    Examples:
      slmnode bench                                  # the node's model, all workloads
      slmnode bench --threads 1,2 --ctx 2048,4096    # sweep; names the best setting
      slmnode bench -m ./a.gguf -m ./b.gguf --only pp512,tg128
      slmnode bench --vs http://127.0.0.1:8081/v1    # vs llama-server, ratios pair by pair
      slmnode bench --endpoint http://127.0.0.1:11434/v1#gemma3:270m   # Ollama
      slmnode bench --predict-for pi4-8gb --plot bench.png --json
      slmnode bench --only agent --protocol anthropic  # the agent jobs over /v1/messages
    """
    if click_ctx.invoked_subcommand is not None:
        return
    _run(models, threads, ctx_sizes, **kwargs)


def _run(models: tuple[str, ...], threads: str | None, ctx_sizes: str | None, *, predict_for: tuple[str, ...],
         plot: Path | None, no_history: bool, as_json: bool, **options: Any) -> None:
    from slmnode.bench import session
    from slmnode.bench.report import print_report
    from slmnode.bench.runner import run_bench

    run = session.prepare(load_settings(), models, threads, ctx_sizes, **options)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as progress:
        task = progress.add_task("starting", total=run.total_units)
        started = False

        def tick(what: str) -> None:
            nonlocal started
            if started:
                progress.advance(task)
            started = True
            progress.update(task, description=what)

        report = run_bench(run.plan, configs=run.configs, endpoints=run.endpoints, vs=run.vs, tick=tick)
        progress.advance(task)

    session.finish(report, models=models, predict_for=predict_for, keep_history=not no_history)
    if plot is not None:
        from slmnode.bench.plot import plot_report

        plot_report(report, plot)
        err_console.print(f"chart written to {plot}", highlight=False)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        print_report(report, Console(soft_wrap=False))
    session.check_measured(report)


@bench.command("history")
@click.option("--compare", nargs=2, type=int, metavar="A B", help="Compare two runs metric by metric (ratios).")
@click.option("--show", type=int, metavar="ID", help="Print one run's full report.")
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True, help="How many recent runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def history_cmd(compare: tuple[int, int] | None, show: int | None, limit: int, as_json: bool) -> None:
    """List past bench runs, show one, or compare two.

    \b
    Examples:
      slmnode bench history
      slmnode bench history --compare 3 7       # ratio >1: run 7 is better
      slmnode bench history --show 7 --json
    """
    from slmnode.bench.history import BenchHistory
    from slmnode.bench.report import compare_table, print_report

    console = Console(soft_wrap=False)
    with BenchHistory() as history:
        if compare:
            a, b, rows = history.compare(*compare)
            if as_json:
                print_json({"a": a.id, "b": b.id, "rows": [
                    {"target": t, "metric": m, "a": va, "b": vb, "b_better_by": r} for t, m, va, vb, r in rows]})
            else:
                console.print(compare_table(a, b, rows))
            return
        if show is not None:
            report = history.get(show)
            print_json(report.model_dump(mode="json")) if as_json else print_report(report, console)
            return
        runs = history.list(limit)
    if as_json:
        print_json([r.to_dict() for r in runs])
        return
    if not runs:
        err_console.print("no bench runs yet: run 'slmnode bench'", highlight=False)
        return
    table = Table(title=f"bench runs ({history.path})", title_justify="left")
    for col in ("id", "when", "label", "targets", "tg128 tok/s", "pp512 tok/s", "ttft s"):
        table.add_column(col, justify="right" if col in ("id", "tg128 tok/s", "pp512 tok/s", "ttft s") else "left")
    for r in runs:
        d = r.to_dict()
        table.add_row(str(r.id), str(d["started_at"]), r.label, ", ".join(r.targets),
                      *(f"{r.headline[k]:.{p}f}" if k in r.headline else "–" for k, p in
                        (("tg128", 1), ("pp512", 1), ("ttft_s", 3))))
    console.print(table)


@bench.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (tools, schemas, task text).")
@handle_errors
def jobs_cmd(as_json: bool) -> None:
    """List the agent jobs the bench runs (fixed, seeded, multi-step).

    \b
    Examples:
      slmnode bench jobs
      slmnode bench jobs --json | jq '.[0].tools'
      slmnode bench --only agent --jobs $(slmnode bench jobs --json | jq -r '.[0].name')
    """
    from slmnode.bench.agent_jobs import JOBS

    if as_json:
        print_json([{"name": j.name, "title": j.title, "steps": [*j.plan, "final"], "seed": j.seed, "task": j.task,
                     "tools": [t.openai() for t in j.tools], "answer_schema": j.answer_schema} for j in JOBS.values()])
        return
    table = Table(title="agent jobs", title_justify="left")
    for col in ("name", "what", "steps"):
        table.add_column(col)
    for j in JOBS.values():
        table.add_row(j.name, j.title, " → ".join([*j.plan, "final answer (json_schema)"]))
    Console(soft_wrap=False).print(table)
