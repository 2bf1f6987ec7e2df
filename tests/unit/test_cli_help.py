"""Every ``slmnode`` command and group answers ``--help`` with examples of itself."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from slmnode.cli import main


def walk(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            if not sub.hidden:
                yield from walk(sub, (*path, name))


COMMANDS = list(walk(main))


def test_the_tree_is_walked() -> None:
    assert {("models", "list"), ("bench", "jobs"), ("events",), ("chat",), ("serve",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "slmnode" for p in COMMANDS])
def test_help_has_examples_of_the_command(path: tuple[str, ...]) -> None:
    res = CliRunner().invoke(main, [*path, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    heading = "Start here:" if not path else "Examples:"
    assert heading in res.output, res.output
    examples = res.output.split(heading, 1)[1].splitlines()
    prefix = " ".join(("slmnode", *path))
    assert any(line.strip().startswith(prefix) or f" {prefix}" in line for line in examples), res.output
