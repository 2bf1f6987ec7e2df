"""The model and its llama.cpp context, as the batch engine uses them (worker side; imports llama_cpp).

:class:`LoadedModel` loads a GGUF through llama-cpp-python's low-level API with one context for
``n_seq`` sequences, and caches what every decode step asks of the vocabulary (token pieces, EOG
flags) and of the output buffer (logits views), because a step is ~12 ms and every 0.1 ms of
Python shows.
"""

from __future__ import annotations

import ctypes
import logging

import llama_cpp
import numpy as np

# llama-cpp-python prints every llama.cpp log line, debug ones included, to stderr: with a lazy grammar that is
# one "Grammar still awaiting trigger" line per generated token. The node keeps llama.cpp's warnings and errors.
logging.getLogger("llama-cpp-python").setLevel(logging.WARNING)

_KV_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}  # ggml_type ids


class LoadedModel:
    """A model and a context for ``n_seq`` sequences of up to ``n_ctx`` tokens each.

    Unified (default): the sequences share one KV cache of ``n_ctx`` cells. Split (``kv_split``): each
    has its own ``n_ctx`` cells, so a decoding sequence does not attend over other sequences' idle
    cached prefixes (cost: ``n_seq`` times the KV cache).
    """

    def __init__(self, model_path: str, *, n_ctx: int, n_threads: int, n_batch: int, n_ubatch: int,
                 n_seq: int, use_mmap: bool = True, use_mlock: bool = False, kv_type: str = "f16",
                 flash_attn: bool | None = None, kv_split: bool = False) -> None:
        from llama_cpp import _internals

        llama_cpp.llama_backend_init()
        mp = llama_cpp.llama_model_default_params()
        mp.use_mmap, mp.use_mlock = use_mmap, use_mlock
        self.model = _internals.LlamaModel(path_model=model_path, params=mp, verbose=False)
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = n_ctx * (n_seq if kv_split else 1), n_batch, min(n_ubatch, n_batch)
        cp.n_seq_max = n_seq
        cp.n_threads = cp.n_threads_batch = n_threads
        kv = _KV_TYPES[kv_type]
        cp.type_k = cp.type_v = kv
        # a quantized V cache needs flash attention in llama.cpp
        # None: llama.cpp decides (on for the CPU backend, as llama-bench and llama-server default to);
        # measured here it is faster: tg128 1.07x (llama-bench -fa 1 vs 0, 5 alternated pairs)
        if flash_attn is None and kv_type == "f16":
            cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
        elif flash_attn or kv_type != "f16":
            cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        else:
            cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cp.swa_full = True  # a sliding-window cache could not be cut back to a shared prefix
        cp.kv_unified = not kv_split  # unified: any one sequence may use the whole shared context
        self.context = _internals.LlamaContext(model=self.model, params=cp, verbose=False)
        self.ctx, self.vocab = self.context.ctx, self.model.vocab
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.kv_cells = llama_cpp.llama_n_ctx(self.ctx)  # all sequences together
        self.n_ctx = self.kv_cells // n_seq if kv_split else self.kv_cells  # one sequence at most
        self.kv_split = kv_split
        self.n_batch, self.n_seq = n_batch, n_seq
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_swa = llama_cpp.llama_model_n_swa(self.model.model)  # sliding-window size (0: none)
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}
        self._views: dict[int, np.ndarray] = {}

    def warm_up(self) -> None:
        """Decode once with every sequence, then once with one, and forget it (as llama.cpp's warmup run).

        The first decodes after a load page in the weights and first-touch the compute buffer; without
        this the first request paid for it (measured: the first 128-token request took 2.14 s, 1.62 s with this).
        """
        batch = llama_cpp.llama_batch_init(self.n_seq, 0, 1)
        bos = llama_cpp.llama_vocab_bos(self.vocab)
        try:
            for rows in (self.n_seq, 1):
                for i in range(rows):
                    batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = max(bos, 0), 0, 1, True
                    batch.seq_id[i][0] = i
                batch.n_tokens = rows
                llama_cpp.llama_decode(self.ctx, batch)
                llama_cpp.llama_memory_clear(self.memory, True)
        finally:
            llama_cpp.llama_batch_free(batch)

    def tokenize(self, text: str) -> list[int]:
        return list(self.model.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def piece(self, token: int) -> bytes:
        """The token's bytes (cached: a decode step is ~12 ms and every 0.1 ms of Python shows)."""
        got = self._pieces.get(token)
        if got is None:
            buf = ctypes.create_string_buffer(64)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
            got = self._pieces[token] = buf.raw[:n]
        return got

    def is_eog(self, token: int) -> bool:
        got = self._eog.get(token)
        if got is None:
            got = self._eog[token] = bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))
        return got

    def logits(self, idx: int) -> np.ndarray:
        """Row ``idx``'s logits, a view into llama.cpp's output buffer (valid until the next decode).

        Views are cached by address: ``np.ctypeslib.as_array`` costs ~20 µs a call, and the output
        buffer only moves when llama.cpp grows it.
        """
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, idx)
        addr = ctypes.cast(ptr, ctypes.c_void_p).value or 0
        view = self._views.get(addr)
        if view is None:
            if len(self._views) > 4096:
                self._views.clear()
            view = self._views[addr] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        return view
