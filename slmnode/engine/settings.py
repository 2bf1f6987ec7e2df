"""What the HTTP side tells an engine worker: model, context, threads, KV layout (JSON on its command line).

Its own module so the HTTP process can build one without importing :mod:`slmnode.engine.worker`, the
child process's entry point (which drives ``llama_cpp``).
"""

from __future__ import annotations

import os

from pydantic import BaseModel, Field


class WorkerSettings(BaseModel):
    model_path: str
    n_ctx: int = 4096
    n_threads: int = 2
    n_batch: int = 512
    n_ubatch: int = 512
    use_mmap: bool = True
    use_mlock: bool = False
    kv_type: str = "f16"
    flash_attn: bool | None = None  # None: llama.cpp decides (on for CPU)
    heartbeat_s: float = 1.0
    parallel: int = 4  # sequences decoded together (slots; also the number of cached prompt prefixes)
    kv_split: bool = False  # each sequence its own n_ctx cells instead of one shared cache
    cache_ram_mb: int = 512  # host RAM for parked prompt caches (slmnode.engine.prompt_cache); 0 = off
    # a request's token text is sent at most this often (its first token at once): on 2 cores each
    # event wakes the HTTP process, which preempts a decode thread
    token_interval_ms: float = Field(default_factory=lambda: float(os.environ.get("SLMNODE_TOKEN_INTERVAL_MS", "40")))
