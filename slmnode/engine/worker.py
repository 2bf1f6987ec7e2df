"""The engine worker process: loads the model with llama-cpp-python and serves the pipe protocol.

Run as ``python -m slmnode.engine.worker '<WorkerSettings JSON>'``. stdout carries the protocol
(see :mod:`slmnode.engine.protocol`); everything llama.cpp prints goes to stderr. A reader thread
takes commands off stdin so a ``cancel`` or ``govern`` lands while generations run; the main thread
runs :class:`slmnode.engine.batch.BatchEngine`, which decodes up to ``parallel`` requests together
(continuous batching, prompt-prefix reuse) and starts the rest in arrival order as slots free up.
An embedding thread serves ``embed`` ops (:mod:`slmnode.engine.embed`); its decodes and the engine's decode
steps take turns (:class:`slmnode.engine.embed.Turns`), so a long embedding slows generation but never stalls it.
"""

from __future__ import annotations

import base64
import functools
import logging
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
    from slmnode.engine.embed import Embedder

log = logging.getLogger("slmnode.engine.worker")


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
            out: _Out, embeds: queue.Queue[dict[str, Any]], embeds_cancelled: set[str]) -> None:
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
        elif op == "embed":  # served by the embedding thread (started once the model is loaded)
            embeds.put(msg)
        elif op == "embed_cancel":
            embeds_cancelled.add(msg.get("id", ""))  # (set.add is atomic)
        elif op == "shutdown":
            break
        else:
            jobs.put(msg)
    jobs.put(None)


def _embedding(embeds: queue.Queue[dict[str, Any]], embedder: Embedder, out: _Out, cancelled: set[str]) -> None:
    """Serve ``embed`` ops one at a time: one ``embedding`` event per input, then ``embedded``.

    An op whose client went away (``embed_cancel``) stops before its next decode."""
    from slmnode.errors import SlmnodeError

    while True:
        msg = embeds.get()
        rid = msg.get("id", "")
        try:
            if rid in cancelled:  # went away while queued
                continue
            stop = functools.partial(cancelled.__contains__, rid)
            for e in embedder.embed(msg["inputs"], bool(msg.get("truncate", False)), stop):
                vector = base64.b64encode(e.vector.astype("<f4").tobytes()).decode("ascii")
                out.send({"ev": "embedding", "id": rid, "index": e.index, "tokens": e.tokens, "vector": vector})
            out.send({"ev": "embedded", "id": rid, "pooling": embedder.pooling_name})
        except SlmnodeError as exc:
            out.send({"ev": "embedded", "id": rid, "kind": type(exc).__name__, "message": exc.message})
        except Exception as exc:  # a bug, or llama.cpp failing: never let one request kill the worker
            log.exception("embed request %s failed", rid)
            out.send({"ev": "embedded", "id": rid, "kind": "EngineError", "message": f"embedding failed: {exc}"})
        finally:
            cancelled.discard(rid)


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
    embeds: queue.Queue[dict[str, Any]] = queue.Queue()
    embeds_cancelled: set[str] = set()
    threading.Thread(target=_reader, args=(sys.stdin.buffer, jobs, engine_ref, out, embeds, embeds_cancelled),
                     daemon=True).start()
    t0 = time.perf_counter()
    try:
        llm = load(settings)
    except Exception as exc:  # llama.cpp raises ValueError/RuntimeError on a bad file
        out.send({"ev": "load_failed", "message": f"cannot load {settings.model_path}: {exc}"})
        return 1
    import gc

    import llama_cpp

    from slmnode.engine.batch import BatchEngine
    from slmnode.engine.embed import Embedder, Turns
    from slmnode.errors import SlmnodeError

    gc.freeze()  # what was loaded lives for good: collections between decode steps need not walk it
    turns = Turns()

    class TurnTakingEngine(BatchEngine):
        def step(self) -> None:  # a decode step waits for an embedding decode in progress, and vice versa
            with turns:
                super().step()

    engine = TurnTakingEngine(llm, out.send_all, settings.n_threads, settings.token_interval_ms / 1000,
                              cache_ram_bytes=settings.cache_ram_mb * 1024 * 1024)
    engine_ref.append(engine)
    try:
        embedder = Embedder(llm, lambda: engine.n_threads, turns)
    except SlmnodeError as exc:  # e.g. a reranker: every embed op gets the reason
        reason = exc

        def refuse() -> None:
            while True:
                msg = embeds.get()
                out.send({"ev": "embedded", "id": msg.get("id", ""), "kind": type(reason).__name__,
                          "message": reason.message})
        threading.Thread(target=refuse, daemon=True).start()
    else:
        threading.Thread(target=_embedding, args=(embeds, embedder, out, embeds_cancelled), daemon=True).start()
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
