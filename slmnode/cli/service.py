"""``slmnode events`` and ``slmnode service install``."""

from __future__ import annotations

import getpass
import shutil
import sys

import click
from rich.console import Console
from rich.table import Table

from slmnode.cli.common import handle_errors, print_json
from slmnode.config import home_dir
from slmnode.errors import ConfigError
from slmnode.supervisor import systemd
from slmnode.supervisor.events import EventLog

console = Console()


@click.command()
@click.option("--limit", "-n", type=int, default=30, show_default=True, help="How many recent events.")
@click.option("--kind", help="Only this kind (crash, hang, restarted, loaded, load_failed, thermal_hard, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def events(limit: int, kind: str | None, as_json: bool) -> None:
    """Recent node events: loads, crashes, hangs, restarts, thermal changes (newest first).

    \b
    Examples:
      slmnode events
      slmnode events --kind crash -n 10
      slmnode events --json | jq '.[] | select(.kind == "restarted")'
    """
    log = EventLog()
    if not log.path.exists():
        if as_json:
            print_json([])
        else:
            console.print(f"no events yet ({log.path} does not exist)")
        return
    items = log.recent(limit, kind)
    if as_json:
        print_json([e.to_dict() for e in items])
        return
    table = Table("TIME", "KIND", "MODEL", "MESSAGE")
    for e in items:
        d = e.to_dict()
        table.add_row(d["time"], e.kind, e.model or "", e.message)
    console.print(table)


@click.group()
def service() -> None:
    """Run the node as a systemd service.

    \b
    Examples:
      slmnode service install --print
      sudo slmnode service install && sudo systemctl enable --now slmnode
    """


@service.command()
@click.option("--print", "print_only", is_flag=True, help="Show the unit and the recommended snippets; write nothing.")
@click.option("--user-unit", is_flag=True, help="Install as a user unit (~/.config/systemd/user) instead of system-wide.")
@click.option("--memory-max", default="85%", show_default=True, help="systemd MemoryMax for the node.")
@click.option("--watchdog-sec", type=int, default=60, show_default=True, help="systemd WatchdogSec.")
@click.option("--args", "serve_args", default="", help="Extra arguments for `slmnode serve` (quoted).")
@handle_errors
def install(print_only: bool, user_unit: bool, memory_max: str, watchdog_sec: int, serve_args: str) -> None:
    """Write a systemd unit (Type=notify, WatchdogSec, Restart=on-failure, MemoryMax).

    \b
    Examples:
      slmnode service install --print          # review first
      sudo slmnode service install && sudo systemctl enable --now slmnode
    """
    exe = shutil.which("slmnode") or sys.executable
    argv = [exe, "serve"] if exe.endswith("slmnode") else [exe, "-m", "slmnode", "serve"]
    argv += serve_args.split()
    text = systemd.unit_text(exec_args=argv, user=None if user_unit else getpass.getuser(), home=str(home_dir()),
                             memory_max=memory_max, watchdog_sec=watchdog_sec)
    path = systemd.default_unit_path(user_unit)
    if print_only:
        click.echo(f"# {path}\n{text}")
        click.echo(systemd.ZRAM_SNIPPET)
        click.echo(systemd.RUNTIME_WATCHDOG_SNIPPET)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}; run with sudo, or use --user-unit or --print") from exc
    scope = "--user " if user_unit else ""
    console.print(f"wrote {path}\nnext: systemctl {scope}daemon-reload && systemctl {scope}enable --now slmnode")
