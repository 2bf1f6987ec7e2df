"""The ``slmnode`` command: one group, one module per command (group)."""

from __future__ import annotations

import click

from slmnode import __version__
from slmnode.cli.bench import bench
from slmnode.cli.costs import costs
from slmnode.cli.doctor import doctor
from slmnode.cli.generate import chat, run
from slmnode.cli.models import models
from slmnode.cli.plan import plan
from slmnode.cli.probe import probe
from slmnode.cli.pull import pull_cmd
from slmnode.cli.quant import quant
from slmnode.cli.serve import serve
from slmnode.cli.service import events, service


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slmnode")
def main() -> None:
    """slmnode: a local language-model node for small Linux boxes.

    \b
    Start here:
      slmnode serve                 start the OpenAI- and Ollama-compatible node
      slmnode run "Hello"           one answer in the terminal
      slmnode chat                  chat in the terminal
      slmnode models list           models in the store

    Settings: flags > SLMNODE_* environment variables > $SLMNODE_HOME/config.toml.
    """


main.add_command(serve)
main.add_command(run)
main.add_command(chat)
main.add_command(models)
main.add_command(events)
main.add_command(service)
main.add_command(pull_cmd)
main.add_command(probe)
main.add_command(plan)
main.add_command(doctor)
main.add_command(bench)
main.add_command(quant)
main.add_command(costs)
