"""The ``slmnode`` command: one group, one module per command (group)."""

from __future__ import annotations

import click

from slmnode import __version__
from slmnode.cli.generate import chat, run
from slmnode.cli.models import models
from slmnode.cli.serve import serve


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
