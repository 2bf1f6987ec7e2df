"""``slmnode serve``: start the HTTP node."""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

import click
import uvicorn

from slmnode.cli.common import engine_options, err_console, handle_errors, settings_from
from slmnode.errors import ConfigError
from slmnode.server.app import build_node, create_app
from slmnode.server.service import Node


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@engine_options
@click.option("--host", help="Address to bind (default 127.0.0.1: this machine only).")
@click.option("--port", "-p", type=int, help="Port (default 8080; 0 picks a free one).")
@click.option("--api-key", envvar="SLMNODE_API_KEY", help="Require 'Authorization: Bearer KEY' on every API route.")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback bind without an API key.")
@handle_errors
def serve(insecure: bool, **kwargs: Any) -> None:
    """Start the node: OpenAI API at /v1, Ollama API at /api, /health, /metrics.

    \b
    Examples:
      slmnode serve                          # embedded model on 127.0.0.1:8080
      slmnode serve --model ./qwen.gguf -c 8192 --port 9000
      OPENAI_BASE_URL=http://127.0.0.1:8080/v1 your-agent ...
    """
    settings = settings_from(kwargs)
    if not _is_loopback(settings.host) and not settings.api_key and not insecure:
        raise ConfigError(
            f"refusing to listen on {settings.host} without an API key: anyone on the network could use "
            "the node. Set --api-key (or SLMNODE_API_KEY), or pass --insecure if you mean it")
    node = build_node(settings)
    ws = node.engine.settings  # type: ignore[attr-defined]

    def loaded(n: Node) -> None:
        if n.engine.state.value == "ready":
            err_console.print(f"[green]ready[/green]: model loaded in {n.engine.load_seconds:.2f} s", highlight=False)
        else:
            err_console.print(f"[red]error[/red]: {n.engine.error}", highlight=False)

    app = create_app(node, on_loaded=loaded)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets)
        for s in server.servers:
            for sock in s.sockets:
                host, port = sock.getsockname()[:2]
                err_console.print(
                    f"slmnode listening on http://{host}:{port}  (OpenAI: /v1, Ollama: /api, /health, /metrics)",
                    highlight=False)
        err_console.print(
            f"model {node.model.name} ({node.model.info.quant_type}, {node.model.info.size_bytes / 2**20:.0f} MiB) "
            f"threads {ws.n_threads}, ctx {ws.n_ctx}, kv {ws.kv_type}; loading...", highlight=False)
        sys.stderr.flush()

    server.startup = startup  # type: ignore[method-assign]
    server.run()
