"""The pipe protocol between the HTTP process and the engine worker: one JSON object per line.

host → worker   {"op": "generate", "id": str, "prompt": str, "params": GenerationParams}
                {"op": "cancel", "id": str}
                {"op": "govern", "threads": int | null, "pace_ms": float}   (thermal governor)
                {"op": "tokenize", "id": str, "text": str}           (count tokens, with BOS, as a prompt)
                {"op": "embed", "id": str, "inputs": [str | [int]], "truncate": bool}   (see engine/embed.py)
                {"op": "embed_cancel", "id": str}                     (its client went away)
                {"op": "shutdown"}
worker → host   {"ev": "loaded", "load_seconds": float, "n_ctx": int, "system_info": str, ...}
                {"ev": "load_failed", "message": str}
                {"ev": "heartbeat"}                                   (every heartbeat_s)
                {"ev": "progress", "id": str, "prompt_done": int}     (after each prompt batch)
                {"ev": "started", "id": str, "prompt_tokens": int, "cached_tokens": int}
                {"ev": "token", "id": str, "text": str}
                {"ev": "done", "id": str, "finish_reason": str, "usage": Usage, "stop": str | null,
                 "parked": int, "parked_bytes": int}                 (prompt caches parked in host RAM)
                {"ev": "error", "id": str, "kind": str, "message": str}
                {"ev": "tokens", "id": str, "count": int} | {"ev": "tokens", "id": str, "error": str}
                {"ev": "embedding", "id": str, "index": int, "tokens": int, "vector": str}
                                              (one per input: base64 of little-endian float32, unit length)
                {"ev": "embedded", "id": str, "pooling": str} | {"ev": "embedded", "id": str, "kind": str,
                 "message": str}                                       (the end of an embed op)

``kind`` names a class in :mod:`slmnode.errors` so the host re-raises the same error.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from slmnode import errors


class GenerationParams(BaseModel):
    """Sampling and output constraints for one request (llama.cpp server defaults)."""

    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(0.95, ge=0.0, le=1.0)
    top_k: int = Field(40, ge=0)
    min_p: float = Field(0.05, ge=0.0, le=1.0)
    repeat_penalty: float = Field(1.0, ge=0.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    json_schema: dict[str, Any] | None = None  # output must validate against this schema
    json_object: bool = False  # output must be a JSON object (any)
    # a GBNF grammar (may hold ``NAME ::= @json-schema(N)`` placeholders for ``grammar_schemas[N]``, see
    # slmnode.engine.gbnf): a tool-call grammar in the model's own syntax. With ``grammar_triggers`` (regular
    # expressions matched against all the text generated so far) it is lazy: free text until a trigger
    # matches, then the grammar from the trigger's first capture group on (llama.cpp's lazy grammar sampler)
    grammar: str | None = None
    grammar_schemas: list[dict[str, Any]] = Field(default_factory=list)
    grammar_triggers: list[str] = Field(default_factory=list)
    grammar_trigger_starts: str = ""  # characters a trigger can begin with (the lazy grammar is created at the first)
    # thinking budget: after this many tokens inside a thinking block (``reasoning_tags`` = open, close), the
    # engine writes the close tag itself so the answer keeps the rest of max_tokens. ``reasoning_open``: the
    # prompt already opened the block (Qwen 3.5's generation prompt ends with ``<think>``)
    reasoning_budget: int | None = Field(None, ge=0)
    reasoning_tags: tuple[str, str] = ("<think>", "</think>")
    reasoning_open: bool = False
    # False: the caller only wants the whole text, so the worker sends it about once a second rather
    # than every token_interval_ms (fewer wake-ups of the HTTP process, which preempt a decode thread)
    stream: bool = True
    # characters at the start of the prompt that later requests are likely to share (system prompt and
    # earlier turns): the engine keeps a cached copy of the prompt cut there (sliding-window models)
    shared_prefix_chars: int = Field(0, ge=0)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens reused from the KV cache
    prompt_ms: float = 0.0  # time to evaluate the (uncached) prompt and sample the first token
    generation_ms: float = 0.0  # time from the first to the last generated token

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def prompt_tps(self) -> float:
        n = self.prompt_tokens - self.cached_tokens
        return n / (self.prompt_ms / 1000) if self.prompt_ms > 0 else 0.0

    @property
    def generation_tps(self) -> float:
        # The first token is produced by the prompt pass; the rest are decode steps.
        n = self.completion_tokens - 1
        return n / (self.generation_ms / 1000) if self.generation_ms > 0 and n > 0 else 0.0


def encode(msg: dict[str, Any]) -> bytes:
    return (json.dumps(msg, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def error_from_wire(kind: str, message: str) -> errors.SlmnodeError:
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.SlmnodeError)):
        cls = errors.EngineError
    return cls(message)
