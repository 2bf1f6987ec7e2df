"""Prometheus metrics of one node (own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from slmnode.engine.protocol import Usage


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("slmnode_requests", "HTTP requests served", ["endpoint", "status"], registry=r)
        self.prompt_tokens = Counter("slmnode_prompt_tokens", "Prompt tokens processed", registry=r)
        self.cached_tokens = Counter("slmnode_prompt_cached_tokens", "Prompt tokens reused from the KV cache", registry=r)
        self.generated_tokens = Counter("slmnode_generated_tokens", "Tokens generated", registry=r)
        self.prompt_tps = Gauge("slmnode_prompt_tokens_per_second", "Prompt tokens/s of the last request", registry=r)
        self.gen_tps = Gauge("slmnode_generation_tokens_per_second", "Generation tokens/s of the last request", registry=r)
        self.queue_depth = Gauge("slmnode_queue_depth", "Requests waiting for the engine", registry=r)
        self.busy = Gauge("slmnode_engine_busy", "1 while the engine is generating", registry=r)
        self.load_seconds = Gauge("slmnode_model_load_seconds", "Seconds the last model load took", registry=r)
        self.ready = Gauge("slmnode_ready", "1 when the model is loaded and serving", registry=r)
        self.parked_prompts = Gauge("slmnode_parked_prompts", "Idle prompt caches held in host RAM (--cache-ram)",
                                    registry=r)
        self.parked_bytes = Gauge("slmnode_parked_prompt_bytes", "Bytes of host RAM holding parked prompt caches",
                                  registry=r)
        self.latency = Histogram("slmnode_request_seconds", "Completed generation request latency", ["endpoint"],
                                 buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300), registry=r)

    def observe_usage(self, usage: Usage) -> None:
        self.prompt_tokens.inc(usage.prompt_tokens)
        self.cached_tokens.inc(usage.cached_tokens)
        self.generated_tokens.inc(usage.completion_tokens)
        if usage.prompt_tps:
            self.prompt_tps.set(usage.prompt_tps)
        if usage.generation_tps:
            self.gen_tps.set(usage.generation_tps)

    def render(self) -> bytes:
        return generate_latest(self.registry)
