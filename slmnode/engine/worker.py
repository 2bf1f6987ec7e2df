"""The engine worker process: loads the model with llama-cpp-python and serves the pipe protocol.

Run as ``python -m slmnode.engine.worker '<WorkerSettings JSON>'``. stdout carries the protocol
(see :mod:`slmnode.engine.protocol`); everything llama.cpp prints goes to stderr. A reader thread
takes commands off stdin so a ``cancel`` lands while a generation runs; generations run one at a
time in the main thread, in arrival order.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import IO, Any

from pydantic import BaseModel

from slmnode.engine.protocol import GenerationParams, Usage, encode
from slmnode.errors import ContextLengthExceeded, SlmnodeError

_KV_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}  # ggml_type ids


class WorkerSettings(BaseModel):
    model_path: str
    n_ctx: int = 4096
    n_threads: int = 2
    n_batch: int = 512
    n_ubatch: int = 512
    use_mmap: bool = True
    use_mlock: bool = False
    kv_type: str = "f16"
    flash_attn: bool = False


class _Out:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.lock = stream, threading.Lock()

    def send(self, msg: dict[str, Any]) -> None:
        with self.lock:
            self.stream.write(encode(msg))
            self.stream.flush()


def load(settings: WorkerSettings) -> Any:
    import llama_cpp

    kv = _KV_TYPES[settings.kv_type]
    return llama_cpp.Llama(
        model_path=settings.model_path,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        n_threads_batch=settings.n_threads,
        n_batch=settings.n_batch,
        n_ubatch=settings.n_ubatch,
        use_mmap=settings.use_mmap,
        use_mlock=settings.use_mlock,
        type_k=kv,
        type_v=kv,
        # a quantized V cache needs flash attention in llama.cpp
        flash_attn=settings.flash_attn or settings.kv_type != "f16",
        verbose=False,
    )


class Engine:
    """One loaded model; generates for one request at a time."""

    def __init__(self, llm: Any, out: _Out) -> None:
        self.llm, self.out = llm, out
        self.cancelled: set[str] = set()
        self.cancel_lock = threading.Lock()

    def is_cancelled(self, rid: str) -> bool:
        with self.cancel_lock:
            return rid in self.cancelled

    def _tokens(self, prompt: str) -> list[int]:
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)

    def _prefill(self, rid: str, tokens: list[int]) -> tuple[int, bool]:
        """Evaluate all but the last prompt token in batches, reusing the cached prefix.

        Returns (cached token count, cancelled). Checking for a cancel between batches keeps a
        long prompt interruptible; generate() then evaluates the last token and samples.
        """
        llm = self.llm
        cached = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), tokens[:-1]):
            if a != b:
                break
            cached += 1
        llm.n_tokens = cached
        for i in range(cached, len(tokens) - 1, llm.n_batch):
            if self.is_cancelled(rid):
                return cached, True
            llm.eval(tokens[i : min(i + llm.n_batch, len(tokens) - 1)])
        return cached, False

    def generate(self, rid: str, prompt: str, params: GenerationParams) -> None:
        import llama_cpp

        from slmnode.engine.grammar import grammar_for

        llm = self.llm
        n_ctx = llm.n_ctx()
        tokens = self._tokens(prompt)
        if len(tokens) >= n_ctx:
            raise ContextLengthExceeded(
                f"this model's context is {n_ctx} tokens, but the prompt has {len(tokens)} tokens; "
                "shorten the prompt or start the node with a larger --ctx", param="messages")
        room = n_ctx - len(tokens)
        if params.max_tokens is not None and params.max_tokens > room:
            raise ContextLengthExceeded(
                f"max_tokens={params.max_tokens} does not fit: the context is {n_ctx} tokens and the "
                f"prompt uses {len(tokens)}, leaving {room}; lower max_tokens", param="max_tokens")
        grammar = grammar_for(params.json_schema, params.json_object)
        max_tokens = params.max_tokens or room
        t0 = time.perf_counter()
        cached, cancelled = self._prefill(rid, tokens)
        usage = Usage(prompt_tokens=len(tokens), cached_tokens=cached)
        self.out.send({"ev": "started", "id": rid, "prompt_tokens": len(tokens), "cached_tokens": cached})
        if cancelled:
            self.out.send({"ev": "done", "id": rid, "finish_reason": "cancelled", "usage": usage.model_dump()})
            return
        count = 0

        def stop_check(_ids: Any, _logits: Any) -> bool:
            nonlocal count
            count += 1
            return self.is_cancelled(rid)

        finish = "stop"
        t_first = None
        stream = llm.create_completion(
            tokens, max_tokens=max_tokens, temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k, min_p=params.min_p, repeat_penalty=params.repeat_penalty,
            presence_penalty=params.presence_penalty, frequency_penalty=params.frequency_penalty,
            seed=params.seed, stop=params.stop or None, grammar=grammar, stream=True,
            stopping_criteria=llama_cpp.StoppingCriteriaList([stop_check]),
        )
        try:
            for chunk in stream:
                if t_first is None:
                    t_first = time.perf_counter()
                choice = chunk["choices"][0]
                if choice["text"]:
                    self.out.send({"ev": "token", "id": rid, "text": choice["text"]})
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                if self.is_cancelled(rid):
                    finish = "cancelled"
                    break
        finally:
            stream.close()
        t_end = time.perf_counter()
        if self.is_cancelled(rid):
            finish = "cancelled"
        t_first = t_first or t_end
        # The stop hook runs once per sampled token, and llama-cpp-python samples one token past
        # the last it returns when it stops at max_tokens or end-of-generation (that token is not
        # part of the answer); a stop string ends the loop right on its last token.
        if finish == "length":
            usage.completion_tokens = min(count, max_tokens)
        elif finish == "cancelled":
            usage.completion_tokens = count
        else:
            usage.completion_tokens = max(count - 1, 0)
        usage.prompt_ms = (t_first - t0) * 1000
        usage.generation_ms = (t_end - t_first) * 1000
        self.out.send({"ev": "done", "id": rid, "finish_reason": finish, "usage": usage.model_dump()})


def _reader(inp: IO[bytes], jobs: queue.Queue[dict[str, Any] | None], engine_ref: list[Engine]) -> None:
    import json

    for raw in inp:
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        if msg.get("op") == "cancel":
            if engine_ref:
                with engine_ref[0].cancel_lock:
                    engine_ref[0].cancelled.add(msg["id"])
        elif msg.get("op") == "shutdown":
            break
        else:
            jobs.put(msg)
    jobs.put(None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    proto = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed to stdout (llama.cpp) goes to stderr
    out = _Out(proto)
    settings = WorkerSettings.model_validate_json(argv[0])
    engine_ref: list[Engine] = []
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_reader, args=(sys.stdin.buffer, jobs, engine_ref), daemon=True).start()
    t0 = time.perf_counter()
    try:
        llm = load(settings)
    except Exception as exc:  # llama.cpp raises ValueError/RuntimeError on a bad file
        out.send({"ev": "load_failed", "message": f"cannot load {settings.model_path}: {exc}"})
        return 1
    import llama_cpp

    engine = Engine(llm, out)
    engine_ref.append(engine)
    out.send({
        "ev": "loaded", "load_seconds": time.perf_counter() - t0, "n_ctx": llm.n_ctx(),
        "n_threads": settings.n_threads, "pid": os.getpid(),
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
    })
    while (msg := jobs.get()) is not None:
        rid = msg.get("id", "")
        if engine.is_cancelled(rid):
            out.send({"ev": "done", "id": rid, "finish_reason": "cancelled", "usage": Usage().model_dump()})
            continue
        try:
            engine.generate(rid, msg["prompt"], GenerationParams.model_validate(msg["params"]))
        except SlmnodeError as exc:
            out.send({"ev": "error", "id": rid, "kind": type(exc).__name__, "message": exc.message})
        except Exception as exc:  # never let one request kill the worker
            out.send({"ev": "error", "id": rid, "kind": "EngineError", "message": f"generation failed: {exc}"})
        with engine.cancel_lock:
            engine.cancelled.discard(rid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
