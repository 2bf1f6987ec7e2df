"""One exception tree for slmnode. Every message is safe to show a user and names the fix.

    SlmnodeError
    ├── ConfigError                 bad setting in a flag, SLMNODE_* variable or TOML file
    ├── StoreError                  the model store cannot be read or written
    │   ├── ModelNotFound           no model by that name in the store          (HTTP 404)
    │   └── ChecksumMismatch        a file's sha256 differs from the expected one
    ├── InsufficientResources       a model would not fit this box's disk or RAM (HTTP 507;
    │                               checked before a download, `--force` overrides)
    ├── ModelFormatError            a file is not a readable GGUF model
    ├── RequestError                a request is invalid                         (HTTP 400)
    │   └── ContextLengthExceeded   prompt (+ max_tokens) does not fit the context (HTTP 400)
    ├── EngineError                 the engine worker could not serve            (HTTP 503)
    │   ├── EngineNotReady          still loading, or failed to load
    │   ├── EngineCrashed           the worker process died (or hung) during a request
    │   ├── ModelLoadError          llama.cpp could not load the model
    │   │   └── NotEnoughMemory     refused before loading: it would not fit the available RAM
    │   ├── QueueFull               too many requests waiting        (503 + Retry-After)
    │   └── ThermalLimit            too hot: no new work until it cools (503 + Retry-After)
    ├── RequestTimeout              a request ran past its time limit             (HTTP 504)
    ├── UpstreamError               no cloud upstream (nor the local fallback) could answer (HTTP 502)
    └── BenchError                  a benchmark target could not be started, reached or measured

Third-party exceptions are translated at the boundary: ``raise ModelFormatError(...) from exc``.
Each class carries an HTTP status and an OpenAI error ``type``/``code`` so the server can render
it without a lookup table of its own.
"""

from __future__ import annotations


class SlmnodeError(Exception):
    """Base class. ``str(err)`` is the user-facing message."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None
    retry_after: int | None = None  # seconds, sent as Retry-After with a 503

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class ConfigError(SlmnodeError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_config"


class StoreError(SlmnodeError):
    status_code = 500
    error_type = "server_error"
    code = "store_error"


class ModelNotFound(StoreError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class ChecksumMismatch(StoreError):
    code = "checksum_mismatch"


class InsufficientResources(SlmnodeError):
    status_code = 507
    error_type = "server_error"
    code = "insufficient_resources"


class ModelFormatError(SlmnodeError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_model_file"


class RequestError(SlmnodeError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class ContextLengthExceeded(RequestError):
    code = "context_length_exceeded"


class EngineError(SlmnodeError):
    status_code = 503
    error_type = "server_error"
    code = "engine_unavailable"
    retry_after = 1


class EngineNotReady(EngineError):
    code = "engine_not_ready"


class EngineCrashed(EngineError):
    code = "engine_crashed"


class ModelLoadError(EngineError):
    code = "model_load_failed"


class NotEnoughMemory(ModelLoadError):
    code = "insufficient_memory"
    retry_after = 60


class QueueFull(EngineError):
    code = "queue_full"
    retry_after = 2


class ThermalLimit(EngineError):
    code = "thermal_limit"
    retry_after = 30


class RequestTimeout(SlmnodeError):
    status_code = 504
    error_type = "server_error"
    code = "request_timeout"


class BenchError(SlmnodeError):
    status_code = 502
    error_type = "server_error"
    code = "bench_failed"


class UpstreamError(SlmnodeError):
    status_code = 502
    error_type = "server_error"
    code = "upstream_unavailable"
