"""The engine worker process: loads the model with llama-cpp-python and serves the pipe protocol.

Run as ``python -m slmnode.engine.worker '<WorkerSettings JSON>'``. stdout carries the protocol
(see :mod:`slmnode.engine.protocol`); everything llama.cpp prints goes to stderr. A reader thread
takes commands off stdin so a ``cancel`` or ``govern`` lands while generations run; the main thread
runs :class:`slmnode.engine.batch.BatchEngine`, which decodes up to ``parallel`` requests together
(continuous batching, prompt-prefix reuse) and starts the rest in arrival order as slots free up.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from slmnode.engine.protocol import encode
from slmnode.engine.settings import WorkerSettings

if TYPE_CHECKING:
    from slmnode.engine.batch import BatchEngine


class _Out:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.lock = stream, threading.Lock()

    def send(self, msg: dict[str, Any]) -> None:
        self.send_all([msg])

    def send_all(self, msgs: list[dict[str, Any]]) -> None:
        """One write for all of ``msgs`` (the HTTP process wakes once per step, not once per event)."""
        data = memoryview(b"".join(encode(m) for m in msgs))
        with self.lock:
            while data:  # a raw pipe write may be partial
                data = data[self.stream.write(data) or 0:]


def load(settings: WorkerSettings) -> Any:
    from slmnode.engine.model import LoadedModel

    lm = LoadedModel(
        settings.model_path, n_ctx=settings.n_ctx, n_threads=settings.n_threads, n_batch=settings.n_batch,
        n_ubatch=settings.n_ubatch, n_seq=settings.parallel, use_mmap=settings.use_mmap,
        use_mlock=settings.use_mlock, kv_type=settings.kv_type, flash_attn=settings.flash_attn,
        kv_split=settings.kv_split,
    )
    lm.warm_up()
    return lm


def _reader(inp: IO[bytes], jobs: queue.Queue[dict[str, Any] | None], engine_ref: list[BatchEngine],
            out: _Out) -> None:
    import json

    for raw in inp:
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        op = msg.get("op")
        if op == "cancel":
            if engine_ref:
                with engine_ref[0].cancel_lock:
                    engine_ref[0].cancelled.add(msg["id"])
        elif op == "govern":  # thermal governor: threads and/or a pause per decode step
            if engine_ref:
                if msg.get("threads"):
                    engine_ref[0].want_threads = max(1, int(msg["threads"]))
                engine_ref[0].pace_s = max(0.0, float(msg.get("pace_ms", 0)) / 1000)
        elif op == "tokenize":  # answered here: llama.cpp's tokenizer only reads the vocabulary
            try:
                out.send({"ev": "tokens", "id": msg["id"], "count": len(engine_ref[0].lm.tokenize(msg["text"]))})
            except Exception as exc:
                out.send({"ev": "tokens", "id": msg.get("id", ""), "error": f"cannot tokenize: {exc}"})
        elif op == "shutdown":
            break
        else:
            jobs.put(msg)
    jobs.put(None)


def _heartbeat(out: _Out, every_s: float) -> None:
    """A beat every ``every_s`` proves the process is scheduled (SIGSTOP or a frozen box stop it)."""
    while True:
        time.sleep(every_s)
        out.send({"ev": "heartbeat"})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    proto = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed to stdout (llama.cpp) goes to stderr
    out = _Out(proto)
    settings = WorkerSettings.model_validate_json(argv[0])
    engine_ref: list[BatchEngine] = []
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_reader, args=(sys.stdin.buffer, jobs, engine_ref, out), daemon=True).start()
    t0 = time.perf_counter()
    try:
        llm = load(settings)
    except Exception as exc:  # llama.cpp raises ValueError/RuntimeError on a bad file
        out.send({"ev": "load_failed", "message": f"cannot load {settings.model_path}: {exc}"})
        return 1
    import gc

    import llama_cpp

    from slmnode.engine.batch import BatchEngine

    gc.freeze()  # what was loaded lives for good: collections between decode steps need not walk it

    engine = BatchEngine(llm, out.send_all, settings.n_threads, settings.token_interval_ms / 1000,
                         cache_ram_bytes=settings.cache_ram_mb * 1024 * 1024)
    engine_ref.append(engine)
    threading.Thread(target=_heartbeat, args=(out, settings.heartbeat_s), daemon=True).start()
    out.send({
        "ev": "loaded", "load_seconds": time.perf_counter() - t0, "n_ctx": llm.n_ctx,
        "n_threads": settings.n_threads, "parallel": settings.parallel, "pid": os.getpid(),
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
    })
    engine.run(jobs)
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
