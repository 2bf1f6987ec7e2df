"""``slmnode run`` (one shot) and ``slmnode chat`` (streaming REPL), straight on the engine."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from slmnode.cli.common import engine_options, err_console, handle_errors, print_json, settings_from
from slmnode.engine.client import Done, Token
from slmnode.engine.protocol import GenerationParams, Usage
from slmnode.errors import RequestError
from slmnode.server.app import build_node
from slmnode.server.models import Lease
from slmnode.server.service import Node, chat_job


async def _stream(node: Node, lease: Lease, messages: list[dict[str, Any]], params: GenerationParams,
                  echo: bool) -> tuple[str, Usage]:
    job = chat_job(lease.model.info, messages, params, chat_format=node.settings.chat_format)
    parts: list[str] = []
    usage = Usage()
    async for ev in lease.engine.generate(job.prompt, job.params):
        if isinstance(ev, Token):
            parts.append(ev.text)
            if echo:
                sys.stdout.write(ev.text)
                sys.stdout.flush()
        elif isinstance(ev, Done):
            usage = ev.usage
    if echo:
        sys.stdout.write("\n")
    return "".join(parts), usage


def _params(max_tokens: int | None, temperature: float | None, seed: int | None, schema: Path | None) -> GenerationParams:
    given: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    if schema is not None:
        try:
            given["json_schema"] = json.loads(schema.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RequestError(f"cannot read JSON schema {schema}: {exc}") from exc
    return GenerationParams(**{k: v for k, v in given.items() if v is not None})


def _stats(usage: Usage) -> str:
    return (f"{usage.prompt_tokens} prompt tokens at {usage.prompt_tps:.1f} tok/s, "
            f"{usage.completion_tokens} generated at {usage.generation_tps:.1f} tok/s")


gen_options = [
    click.option("--max-tokens", "-n", type=int, help="Stop after this many tokens (default: up to the context)."),
    click.option("--temperature", type=float, help="Sampling temperature (default 0.8; 0 = greedy)."),
    click.option("--seed", type=int, help="Random seed for reproducible output."),
    click.option("--system", "-s", help="System prompt."),
]


def _with(opts: list[Any]) -> Any:
    def deco(fn: Any) -> Any:
        for o in reversed(opts):
            fn = o(fn)
        return fn
    return deco


@click.command()
@click.argument("prompt")
@engine_options
@_with(gen_options)
@click.option("--schema", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON schema file: the answer is forced (by grammar) to validate against it.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object with the text, usage and speed.")
@click.option("--verbose", "-v", is_flag=True, help="Print load time and speed to stderr.")
@handle_errors
def run(prompt: str, max_tokens: int | None, temperature: float | None, seed: int | None, system: str | None,
        schema: Path | None, as_json: bool, verbose: bool, **kwargs: Any) -> None:
    """Answer one PROMPT and exit ('-' reads it from stdin).

    \b
    Examples:
      slmnode run "Name three colours."
      echo "Summarize: ..." | slmnode run - -n 64
      slmnode run "Extract the city from: I live in Oslo" --schema city.json
    """
    settings = settings_from(kwargs)
    text_in = sys.stdin.read() if prompt == "-" else prompt
    params = _params(max_tokens, temperature, seed, schema)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text_in}]

    async def go() -> None:
        node = build_node(settings)
        try:
            lease = await node.models.acquire(None)
            if verbose:
                err_console.print(f"loaded {lease.model.name} in {lease.engine.load_seconds:.2f} s", highlight=False)
            text, usage = await _stream(node, lease, messages, params, echo=not as_json)
            if as_json:
                print_json({"model": lease.model.name, "text": text, "usage": usage.model_dump(),
                            "prompt_tps": usage.prompt_tps, "generation_tps": usage.generation_tps,
                            "load_seconds": lease.engine.load_seconds})
            elif verbose:
                err_console.print(_stats(usage), highlight=False)
        finally:
            await node.models.stop_all()

    asyncio.run(go())


@click.command()
@engine_options
@_with(gen_options)
@handle_errors
def chat(max_tokens: int | None, temperature: float | None, seed: int | None, system: str | None, **kwargs: Any) -> None:
    """Chat in the terminal, streaming the answers. /reset clears the history, /bye (or Ctrl-D) quits.

    \b
    Examples:
      slmnode chat
      slmnode chat --model qwen3.5:2b --system "Answer in one sentence."
      slmnode chat --temperature 0 --seed 1 -n 200
    """
    settings = settings_from(kwargs)
    params = _params(max_tokens, temperature, seed, None)

    async def go() -> None:
        node = build_node(settings)
        err_console.print(f"loading {node.default.name}...", highlight=False)
        lease = await node.models.acquire(None)
        err_console.print(f"ready in {lease.engine.load_seconds:.2f} s. /reset clears, /bye quits.", highlight=False)
        history: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        try:
            while True:
                try:
                    line = await asyncio.to_thread(input, ">>> ")
                except EOFError:
                    break
                if line.strip() in ("/bye", "/exit", "/quit"):
                    break
                if line.strip() == "/reset":
                    history = history[:1] if system else []
                    continue
                if not line.strip():
                    continue
                history.append({"role": "user", "content": line})
                try:
                    answer, usage = await _stream(node, lease, history, params, echo=True)
                except RequestError as exc:
                    err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
                    history.pop()
                    continue
                history.append({"role": "assistant", "content": answer})
                err_console.print(f"[dim]{_stats(usage)}[/dim]", highlight=False)
        finally:
            lease.release()
            await node.models.stop_all()

    asyncio.run(go())
