"""Embedding routes: OpenAI ``POST /v1/embeddings``, Ollama ``POST /api/embed`` and the legacy ``POST /api/embeddings``.

The vectors come from the engine worker (:mod:`slmnode.engine.embed`: the model's pooling, or mean for a
generative model; L2-normalised). ``dimensions`` keeps the first N components and normalises again. Errors use
each protocol's shape (:mod:`slmnode.server.errors` picks it by path). What is supported and refused:
docs/api-embeddings.md.
"""

from __future__ import annotations

import asyncio
import base64
import math
import struct
import time
from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from slmnode.engine.client import Embeddings
from slmnode.errors import RequestError
from slmnode.server.models import Lease, parse_keep_alive
from slmnode.server.service import Node

router = APIRouter(tags=["embeddings"])

MAX_INPUTS = 2048  # OpenAI's limit of inputs per request
T = TypeVar("T")


class OpenAIEmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # user: accepted and ignored

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)


class OllamaEmbedRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # options: accepted and ignored

    model: str
    input: str | list[str] | None = None
    truncate: bool = True
    dimensions: int | None = Field(None, ge=1)
    keep_alive: str | int | float | None = None


class OllamaLegacyRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    prompt: str = ""
    keep_alive: str | int | float | None = None


def shortened(vector: list[float], dimensions: int | None) -> list[float]:
    """The first ``dimensions`` components, normalised to unit length again (all of it when None)."""
    if dimensions is None or dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(math.fsum(x * x for x in head))
    return [x / norm for x in head] if norm > 0 else head


def _check_dimensions(dimensions: int | None, lease: Lease) -> None:
    n_embd = lease.model.info.embedding_length
    if dimensions is not None and n_embd and dimensions > n_embd:
        raise RequestError(f"dimensions={dimensions} is more than this model's {n_embd}; ask for at most {n_embd}",
                           param="dimensions")


async def _disconnected(request: Request) -> None:
    """Returns when the client has closed the connection (the body has been read: nothing else arrives)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_gone(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result; cancelled when the client goes away first (the worker then stops embedding)."""
    job, gone = asyncio.ensure_future(work), asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not job.done():
            job.cancel()
    if job.cancelled():
        raise RequestError("the client closed the connection before the embeddings were ready")
    return job.result()


async def _embed(request: Request, model: str | None, inputs: list[str] | list[list[int]], truncate: bool,
                 dimensions: int | None, keep_alive: float | None | str = "unset") -> tuple[Lease, Embeddings, int]:
    """(the lease, released; the embeddings, shortened to ``dimensions``; load time in ns when this request waited)."""
    node: Node = request.app.state.node
    if len(inputs) > MAX_INPUTS:
        raise RequestError(f"{len(inputs)} inputs; at most {MAX_INPUTS} per request", param="input")
    lease = await node.models.acquire(model, keep_alive)
    try:
        load_ns = int((lease.engine.load_seconds or 0) * 1e9) if lease.fresh else 0
        _check_dimensions(dimensions, lease)
        got = await unless_gone(request, lease.engine.embed(inputs, truncate)) if inputs else Embeddings([], [], "")
    except RequestError as exc:  # from the worker (the pipe carries no param): it is about the input
        exc.param = exc.param or "input"
        raise
    finally:
        lease.release()
    vectors = [shortened(v, dimensions) for v in got.vectors]
    return lease, Embeddings(vectors, got.token_counts, got.pooling), load_ns


def _float32_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


# -- OpenAI -------------------------------------------------------------------------------------------------------
@router.post("/v1/embeddings")
async def openai_embeddings(body: OpenAIEmbeddingsRequest, request: Request) -> dict[str, Any]:
    raw = body.input
    inputs: list[str] | list[list[int]]
    if isinstance(raw, str):
        inputs = [raw]
    elif raw and all(isinstance(t, int) for t in raw):
        inputs = [raw]  # type: ignore[assignment]  # one input given as token ids
    else:
        inputs = raw  # type: ignore[assignment]
    if not inputs:
        raise RequestError("input must not be empty: give a string, a list of strings or token arrays", param="input")
    if any(len(x) == 0 for x in inputs):
        raise RequestError("input must not contain an empty string or token array", param="input")
    lease, got, _ = await _embed(request, body.model, inputs, False, body.dimensions)
    data = [{"object": "embedding", "index": i,
             "embedding": _float32_base64(v) if body.encoding_format == "base64" else v}
            for i, v in enumerate(got.vectors)]
    n = sum(got.token_counts)
    return {"object": "list", "data": data, "model": lease.model.name,
            "usage": {"prompt_tokens": n, "total_tokens": n}}


# -- Ollama -------------------------------------------------------------------------------------------------------
def _keep_alive(value: str | int | float | None) -> float | None | str:
    return "unset" if value is None else parse_keep_alive(value)


@router.post("/api/embed")
async def ollama_embed(body: OllamaEmbedRequest, request: Request) -> dict[str, Any]:
    t0 = time.perf_counter_ns()
    raw = body.input
    inputs = [] if raw is None or raw == "" else [raw] if isinstance(raw, str) else raw  # "" only loads the model
    lease, got, load_ns = await _embed(request, body.model, inputs, body.truncate, body.dimensions,
                                       _keep_alive(body.keep_alive))
    return {"model": lease.model.name, "embeddings": got.vectors, "total_duration": time.perf_counter_ns() - t0,
            "load_duration": load_ns, "prompt_eval_count": sum(got.token_counts)}


@router.post("/api/embeddings")
async def ollama_embeddings(body: OllamaLegacyRequest, request: Request) -> dict[str, Any]:
    """Ollama's older route: one ``prompt`` in, one ``embedding`` out (normalised here too; cut to fit)."""
    inputs = [body.prompt] if body.prompt else []
    _, got, _ = await _embed(request, body.model, inputs, True, None, _keep_alive(body.keep_alive))
    return {"embedding": got.vectors[0] if got.vectors else []}
