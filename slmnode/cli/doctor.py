"""``slmnode doctor``: is this box ready for 24/7 work?"""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from slmnode.cli.common import handle_errors, print_json, settings_from
from slmnode.cli.probe import probe_with_build
from slmnode.doctor.checks import exit_code, run_checks
from slmnode.doctor.context import doctor_context

console = Console()
_STYLE = {"pass": "[green]pass[/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]fail[/red]",
          "na": "[dim]n/a[/dim]"}


@click.command()
@click.option("--model", "-m", help="The model you will serve (default: the configured one).")
@click.option("--ctx", "-c", type=int, help="Context you will serve (default: the configured one).")
@click.option("--root", default="/", show_default=True, help="Check a capture of another box.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def doctor(model: str | None, ctx: int | None, root: str, as_json: bool) -> None:
    """Pre-flight checklist: RAM, disk, swap, heat, power, storage, watchdog, llama.cpp build.

    Each check says pass / warn / fail / n/a, why, and the exact command that fixes it.
    Exit code 2 if any check fails, 0 otherwise.

    \b
    Examples:
      slmnode doctor
      slmnode doctor --model qwen2.5-1.5b-instruct --ctx 8192
      slmnode doctor --json | jq '.findings[] | select(.status != "pass")'
    """
    settings = settings_from({"model": model, "ctx": ctx})
    hw = probe_with_build(root)
    findings = run_checks(hw, doctor_context(settings, hw))
    code = exit_code(findings)
    if as_json:
        print_json({"board": hw.board, "findings": [f.to_dict() for f in findings], "exit_code": code})
    else:
        table = Table("CHECK", "STATUS", "WHY", "FIX")
        for f in findings:
            table.add_row(f.check, _STYLE[f.status], f.reason, f.fix or "")
        console.print(table)
    sys.exit(code)
