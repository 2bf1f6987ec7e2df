"""Random-weight stand-ins of catalog models: the real architecture, hyperparameters and vocabulary size.

A stand-in runs the same llama.cpp graph, allocates the same memory and decodes at the same speed as
the model it stands in for, without its weights (llama.cpp's ``tests/test-llama-archs.cpp`` does the
same). Its output is noise: the file says so (``general.name`` ends in "(stand-in, random weights)",
``slmnode.standin = true``) and the store manifest records ``standin: true``.

Tensor names come from llama.cpp's own tables (``gguf.MODEL_TENSORS``); the shape of each tensor kind
is the one ``src/models/<arch>.cpp`` creates (ggml order: ``{n_in, n_out}``). Optional tensors
(``rope_freqs``, MoE experts, ...) are left out. The tokenizer is synthetic: SentencePiece-style
("llama") with ``<unk>``, the 256 byte tokens, filler tokens and the model's special tokens, padded to
the real vocabulary size; the real chat template is copied in where the repo ships it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import gguf
import numpy as np

from slmnode.catalog.families import ModelFamily
from slmnode.errors import ConfigError, StoreError

STANDIN_SUFFIX = "(stand-in, random weights)"
STANDIN_KEY = "slmnode.standin"


@dataclass(frozen=True)
class ArchDefaults:
    """What the catalog does not record, from the models' public config.json (Hugging Face)."""

    rope_theta: float
    rms_eps: float
    specials: tuple[str, ...]  # bos, eos, eot (eot may equal eos), then other control tokens
    template: str | None = None  # file in slmnode/data/chat_templates
    qkv_bias: bool = False
    rope_theta_swa: float | None = None


# config.json: meta-llama/Llama-3.2-1B-Instruct (rope_theta 500000, rms_norm_eps 1e-5; the llama3 rope
# scaling tensor rope_freqs is optional in llama.cpp and left out); HuggingFaceTB/SmolLM2-*-Instruct
# (rope_theta 100000 for 135M/360M, 1e-5) -> per-model override below; google/gemma-3-1b-it
# (rope_theta 1e6, rope_local_base_freq 10000, rms_norm_eps 1e-6); Qwen/Qwen2.5-0.5B-Instruct and
# Qwen/Qwen3-0.6B (rope_theta 1e6, rms_norm_eps 1e-6; Qwen2 has q/k/v biases).
_LLAMA3 = ("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>")
_CHATML = ("<|endoftext|>", "<|im_end|>", "<|im_end|>", "<|im_start|>")
ARCH_DEFAULTS: dict[str, ArchDefaults] = {
    "llama": ArchDefaults(500000.0, 1e-5, _LLAMA3, "meta-llama-Llama-3.2-3B-Instruct.jinja"),
    "gemma3": ArchDefaults(1e6, 1e-6, ("<bos>", "<eos>", "<end_of_turn>", "<start_of_turn>"),
                           "google-gemma-3-4b-it.jinja", rope_theta_swa=10000.0),
    "qwen2": ArchDefaults(1e6, 1e-6, _CHATML, "Qwen-Qwen2.5-7B-Instruct.jinja", qkv_bias=True),
    "qwen3": ArchDefaults(1e6, 1e-6, _CHATML, "Qwen-Qwen3-0.6B.jinja"),
}
# per-model differences from the family defaults (same sources)
_SMOL = ArchDefaults(100000.0, 1e-5, ("<|im_start|>", "<|im_end|>", "<|im_end|>"))  # ChatML; template not shipped
MODEL_DEFAULTS: dict[str, ArchDefaults] = {
    "smollm2-135m": _SMOL, "smollm2-360m": _SMOL, "smollm-135m": _SMOL,
    "smollm2-1.7b": replace(_SMOL, rope_theta=130000.0),
    "tinyllama-1.1b": ArchDefaults(10000.0, 1e-5, ("<s>", "</s>", "</s>")),
    "llama-7b": ArchDefaults(10000.0, 1e-6, ("<s>", "</s>", "</s>")),
}

# tensors llama.cpp loads only when present; a stand-in leaves them out
_OPTIONAL = {gguf.MODEL_TENSOR.ROPE_FREQS, gguf.MODEL_TENSOR.ATTN_ROT_EMBD, gguf.MODEL_TENSOR.FFN_GATE_INP,
             gguf.MODEL_TENSOR.FFN_GATE_EXP, gguf.MODEL_TENSOR.FFN_DOWN_EXP, gguf.MODEL_TENSOR.FFN_UP_EXP}


def supported_architectures() -> list[str]:
    return list(ARCH_DEFAULTS)


def tiny_family(f: ModelFamily) -> ModelFamily:
    """Same architecture, small dimensions: GQA kept when the model has it; a SWA model keeps one full
    period of layers (5 windowed, 1 global) and a window smaller than a test prompt."""
    n_head = 4
    n_head_kv = n_head if f.n_head_kv == f.n_head else 2
    n_layers = f.swa_period or 2
    return replace(f, n_layers=n_layers, n_embd=64, n_ff=128, n_head=n_head, n_head_kv=n_head_kv,
                   head_dim=32 if f.head_dim * f.n_head != f.n_embd else 16, vocab=512, ctx_train=4096,
                   sliding_window=32 if f.sliding_window else None, params=0)


def defaults_for(f: ModelFamily) -> ArchDefaults:
    if f.architecture not in ARCH_DEFAULTS:
        raise ConfigError(f"no stand-in for {f.display}: architecture '{f.architecture}' is not supported yet "
                          f"(supported: {', '.join(ARCH_DEFAULTS)})", param="name")
    return MODEL_DEFAULTS.get(f.key, ARCH_DEFAULTS[f.architecture])


def tensor_shapes(f: ModelFamily) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(name, ggml shape) of every tensor ``f``'s architecture needs, in llama.cpp's table order."""
    d = defaults_for(f)
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == f.architecture)
    kinds = [k for k in gguf.MODEL_TENSORS[arch] if k not in _OPTIONAL]
    q, kv, T = f.n_head * f.head_dim, f.n_head_kv * f.head_dim, gguf.MODEL_TENSOR
    shape: dict[gguf.MODEL_TENSOR, tuple[int, ...]] = {
        T.TOKEN_EMBD: (f.n_embd, f.vocab), T.OUTPUT: (f.n_embd, f.vocab), T.OUTPUT_NORM: (f.n_embd,),
        T.ATTN_NORM: (f.n_embd,), T.FFN_NORM: (f.n_embd,), T.FFN_PRE_NORM: (f.n_embd,), T.ATTN_POST_NORM: (f.n_embd,),
        T.FFN_POST_NORM: (f.n_embd,), T.ATTN_Q: (f.n_embd, q), T.ATTN_K: (f.n_embd, kv),
        T.ATTN_V: (f.n_embd, kv), T.ATTN_OUT: (q, f.n_embd), T.ATTN_Q_NORM: (f.head_dim,),
        T.ATTN_K_NORM: (f.head_dim,), T.FFN_GATE: (f.n_embd, f.n_ff), T.FFN_UP: (f.n_embd, f.n_ff),
        T.FFN_DOWN: (f.n_ff, f.n_embd),
    }
    unknown = [gguf.TENSOR_NAMES[k] for k in kinds if k not in shape]
    if unknown:
        raise ConfigError(f"stand-in for '{f.architecture}': no shape rule for {', '.join(unknown)}")
    for k in kinds:
        if "{bid}" in gguf.TENSOR_NAMES[k]:
            continue
        if k == T.OUTPUT and f.tied_embeddings:
            continue
        yield f"{gguf.TENSOR_NAMES[k]}.weight", shape[k]
    for i in range(f.n_layers):
        for k in kinds:
            name = gguf.TENSOR_NAMES[k]
            if "{bid}" not in name:
                continue
            yield f"{name.format(bid=i)}.weight", shape[k]
            if d.qkv_bias and k in (T.ATTN_Q, T.ATTN_K, T.ATTN_V):
                yield f"{name.format(bid=i)}.bias", (shape[k][1],)


def _vocab(f: ModelFamily, d: ArchDefaults) -> tuple[list[str], list[float], list[int]]:
    specials = list(dict.fromkeys(d.specials))
    tokens = ["<unk>", *specials, *(f"<0x{b:02X}>" for b in range(256))]
    types = [gguf.TokenType.UNKNOWN, *[gguf.TokenType.CONTROL] * len(specials), *[gguf.TokenType.BYTE] * 256]
    if len(tokens) > f.vocab:
        raise ConfigError(f"vocabulary of {f.vocab} is too small for a stand-in tokenizer")
    # single characters, so text tokenizes about one token per character, then fillers
    tokens += ["\u2581", *(chr(c) for c in range(33, 127))][: max(0, f.vocab - len(tokens))]
    types += [gguf.TokenType.NORMAL] * (len(tokens) - len(types))
    n_fill = f.vocab - len(tokens)
    tokens += [f"\u2581t{i}" for i in range(n_fill)]
    types += [gguf.TokenType.NORMAL] * n_fill
    scores = [0.0] * (f.vocab - n_fill) + [-float(i + 1) for i in range(n_fill)]
    return tokens, scores, [int(t) for t in types]


def _template(name: str | None) -> str | None:
    if name is None:
        return None
    return (Path(__file__).resolve().parent.parent / "data" / "chat_templates" / name).read_text(encoding="utf-8")


def _random(name: str, shape: tuple[int, ...], seed: int, index: int) -> np.ndarray:
    """Seeded weights in numpy order (ggml shape reversed): norms 1, biases 0, matrices N(0, 1/fan_in)."""
    np_shape = tuple(reversed(shape))
    if len(shape) == 1:
        return np.full(np_shape, 0.0 if name.endswith(".bias") else 1.0, dtype=np.float32)
    rng = np.random.default_rng([seed, index])
    w = rng.standard_normal(np_shape, dtype=np.float32)
    w *= 1.0 / np.sqrt(shape[0])
    return w.astype(np.float16)


def write_standin(f: ModelFamily, path: Path, *, seed: int = 0, tiny: bool = False) -> Path:
    """Write ``f``'s stand-in as an F16 GGUF at ``path`` (tensors streamed, one in memory at a time)."""
    d = defaults_for(f)
    shape_f = tiny_family(f) if tiny else f
    arch = f.architecture
    tensors = list(tensor_shapes(shape_f))
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"{f.display}{' tiny' if tiny else ''} {STANDIN_SUFFIX}")
    w.add_bool(STANDIN_KEY, True)
    w.add_uint32("slmnode.standin.seed", seed)
    w.add_string("slmnode.standin.of", f.key)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_context_length(shape_f.ctx_train)
    w.add_embedding_length(shape_f.n_embd)
    w.add_block_count(shape_f.n_layers)
    w.add_feed_forward_length(shape_f.n_ff)
    w.add_head_count(shape_f.n_head)
    w.add_head_count_kv(shape_f.n_head_kv)
    w.add_key_length(shape_f.head_dim)
    w.add_value_length(shape_f.head_dim)
    w.add_rope_dimension_count(shape_f.head_dim)
    w.add_rope_freq_base(d.rope_theta)
    w.add_layer_norm_rms_eps(d.rms_eps)
    w.add_vocab_size(shape_f.vocab)
    if shape_f.sliding_window:
        w.add_sliding_window(shape_f.sliding_window)
        if d.rope_theta_swa:
            w.add_float32(gguf.Keys.Rope.FREQ_BASE_SWA.format(arch=arch), d.rope_theta_swa)
    tokens, scores, types = _vocab(shape_f, d)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(tokens.index(d.specials[0]))
    w.add_eos_token_id(tokens.index(d.specials[1]))
    w.add_eot_token_id(tokens.index(d.specials[2]))
    w.add_add_bos_token(arch in ("llama", "gemma3"))
    if (template := _template(d.template)) is not None:
        w.add_chat_template(template)
    for name, shape in tensors:
        is_vec = len(shape) == 1
        dtype = np.dtype(np.float32 if is_vec else np.float16)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        w.add_tensor_info(name, tuple(reversed(shape)), dtype, nbytes)
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for i, (name, shape) in enumerate(tensors):
            w.write_tensor_data(_random(name, shape, seed, i))
    except OSError as exc:
        raise StoreError(f"cannot write the stand-in {path}: {exc.strerror}") from exc
    finally:
        w.close()
    return path


def standin_name(model: str, tiny: bool) -> str:
    return f"{model}-standin{'-tiny' if tiny else ''}"


def tmp_path_beside(directory: Path, stem: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f".partial-standin-{stem}-{os.getpid()}.gguf"
