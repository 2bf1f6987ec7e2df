"""``slmnode serve``: start the HTTP node."""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

import click
import uvicorn

from slmnode.cli.common import engine_options, err_console, handle_errors, settings_from
from slmnode.errors import ConfigError
from slmnode.server.app import create_app, worker_settings
from slmnode.server.service import Node
from slmnode.supervisor import systemd
from slmnode.supervisor.node import supervised_node


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
@click.option("--keep-alive", help="Unload other models idle this long (300, 5m, 1h; -1 never; default 5m).")
@click.option("--max-loaded-models", type=int, help="How many models may be resident at once (default 1).")
@click.option("--max-queue", type=int, help="Requests that may wait; past it 503 + Retry-After (default 32).")
@click.option("--request-timeout", type=float, help="Seconds a request may run (default 600; 0 = no limit).")
@handle_errors
def serve(insecure: bool, **kwargs: Any) -> None:
    """Start the node: OpenAI API at /v1, Ollama API at /api, /health, /metrics.

    \b
    Examples:
      slmnode serve                          # embedded SmolLM2 135M Instruct on 127.0.0.1:8080
      slmnode serve --model ./qwen.gguf -c 8192 --port 9000
      OPENAI_BASE_URL=http://127.0.0.1:8080/v1 your-agent ...
    """
    settings = settings_from(kwargs)
    if not _is_loopback(settings.host) and not settings.api_key and not insecure:
        raise ConfigError(
            f"refusing to listen on {settings.host} without an API key: anyone on the network could use "
            "the node. Set --api-key (or SLMNODE_API_KEY), or pass --insecure if you mean it")
    node = supervised_node(settings)
    ws = worker_settings(settings, node.default)

    def loaded(n: Node) -> None:
        slot = n.models.slot_of(n.default.name)
        if slot is not None:
            err_console.print(f"[green]ready[/green]: model loaded in {slot.engine.load_seconds:.2f} s", highlight=False)
            systemd.notify(f"READY=1\nSTATUS=serving {n.default.name}")
        else:
            err_console.print(f"[red]error[/red]: {n.models.last_error}", highlight=False)
            systemd.notify(f"STATUS=error: {n.models.last_error}")

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
            f"model {node.default.name} ({node.default.info.quant_type}, {node.default.info.size_bytes / 2**20:.0f} MiB) "
            f"threads {ws.n_threads}, ctx {ws.n_ctx}, kv {ws.kv_type} "
            f"{f'split ({ws.parallel} x {ws.n_ctx})' if ws.kv_split else 'unified'}, parallel {ws.parallel}; loading...",
            highlight=False)
        router = getattr(node.router, "config", None)
        if router is not None and router.upstreams:
            names = ", ".join(u.name for u in router.upstreams)
            err_console.print(f"router: model 'auto' routes between local and {names} (default {router.upstreams[0].name}); "
                              f"private data {'stays local' if router.privacy == 'local' else 'is redacted before it leaves'}; "
                              f"costs: slmnode costs", highlight=False)
        sys.stderr.flush()

    server.startup = startup  # type: ignore[method-assign]
    server.run()
