"""Read a GGUF file's metadata fast.

``gguf.GGUFReader`` parses every array element eagerly: on a 262,144-token vocabulary (Gemma 3)
that takes ~10 s. Serving and ``slmnode models show`` need only the scalar keys, the tensor list and
a few vocabulary entries, so this reader walks the header once, skips large arrays by their length
prefixes, and uses the ``gguf`` package's own type definitions (value types, quant types, file
types). A test cross-checks it against ``GGUFReader`` on the embedded model.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import gguf
import numpy as np

from slmnode.errors import ModelFormatError

_SCALAR: dict[int, str] = {
    gguf.GGUFValueType.UINT8: "<B", gguf.GGUFValueType.INT8: "<b",
    gguf.GGUFValueType.UINT16: "<H", gguf.GGUFValueType.INT16: "<h",
    gguf.GGUFValueType.UINT32: "<I", gguf.GGUFValueType.INT32: "<i",
    gguf.GGUFValueType.FLOAT32: "<f", gguf.GGUFValueType.BOOL: "<?",
    gguf.GGUFValueType.UINT64: "<Q", gguf.GGUFValueType.INT64: "<q",
    gguf.GGUFValueType.FLOAT64: "<d",
}
# Arrays longer than this are not materialised, only their length is kept (vocabularies, merges).
_MAX_ARRAY = 4096
# Vocabulary entries kept for turning special-token ids into text.
_WANTED_TOKEN_KEYS = ("bos_token_id", "eos_token_id", "eot_token_id", "padding_token_id")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: str
    n_elements: int
    n_bytes: int


@dataclass
class GGUFMetadata:
    """The header of a GGUF file: key/values (large arrays as their length) and tensor infos."""

    path: Path
    version: int
    kv: dict[str, Any]
    tensors: list[TensorInfo]
    array_lengths: dict[str, int] = field(default_factory=dict)
    special_tokens: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.kv.get(key, default)


class _Reader:
    def __init__(self, fh: BinaryIO, size: int) -> None:
        self.fh, self.size = fh, size

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise ModelFormatError(f"{self.fh.name}: truncated GGUF header")
        return data

    def scalar(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.scalar("<Q")
        if n > self.size:
            raise ModelFormatError(f"{self.fh.name}: corrupt GGUF string length {n}")
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype == gguf.GGUFValueType.STRING:
            return self.string()
        if vtype in _SCALAR:
            return self.scalar(_SCALAR[vtype])
        raise ModelFormatError(f"{self.fh.name}: unknown GGUF value type {vtype}")


def _read_array(r: _Reader, key: str, meta: GGUFMetadata, offsets: list[int] | None) -> Any:
    """Read an array value; a long string array is skipped, recording each entry's offset."""
    etype = r.scalar("<I")
    n = r.scalar("<Q")
    if etype == gguf.GGUFValueType.STRING:
        if n <= _MAX_ARRAY:
            return [r.string() for _ in range(n)]
        meta.array_lengths[key] = n
        for _ in range(n):
            if offsets is not None:
                offsets.append(r.fh.tell())
            r.fh.seek(r.scalar("<Q"), 1)
        return None
    if etype == gguf.GGUFValueType.ARRAY:
        return [_read_array(r, key, meta, None) for _ in range(n)]
    fmt = _SCALAR.get(etype)
    if fmt is None:
        raise ModelFormatError(f"{r.fh.name}: unknown GGUF array type {etype} for {key}")
    width = struct.calcsize(fmt)
    if n <= _MAX_ARRAY:
        return list(np.frombuffer(r.read(width * n), dtype=np.dtype(fmt)).tolist())
    meta.array_lengths[key] = n
    r.fh.seek(width * n, 1)
    return None


def read_metadata(path: str | Path) -> GGUFMetadata:
    """Parse the GGUF header of ``path``. Raises :class:`ModelFormatError` if it is not GGUF."""
    path = Path(path)
    try:
        size = path.stat().st_size
        fh = path.open("rb")
    except OSError as exc:
        raise ModelFormatError(f"cannot open model file {path}: {exc.strerror}") from exc
    with fh:
        r = _Reader(fh, size)
        if size < 24 or r.read(4) != b"GGUF":
            raise ModelFormatError(f"{path} is not a GGUF file (bad magic); slmnode serves GGUF models")
        version = r.scalar("<I")
        if version not in (2, 3):
            raise ModelFormatError(f"{path}: unsupported GGUF version {version}")
        n_tensors, n_kv = r.scalar("<Q"), r.scalar("<Q")
        meta = GGUFMetadata(path=path, version=version, kv={}, tensors=[])
        vocab_offsets: list[int] = []
        for _ in range(n_kv):
            key = r.string()
            vtype = r.scalar("<I")
            if vtype == gguf.GGUFValueType.ARRAY:
                is_vocab = key == "tokenizer.ggml.tokens"
                meta.kv[key] = _read_array(r, key, meta, vocab_offsets if is_vocab else None)
            else:
                meta.kv[key] = r.value(vtype)
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.scalar("<I")
            shape = tuple(r.scalar("<Q") for _ in range(n_dims))
            qtype = gguf.GGMLQuantizationType(r.scalar("<I"))
            r.scalar("<Q")  # offset
            n_el = int(np.prod(shape)) if shape else 1
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
            meta.tensors.append(
                TensorInfo(name, shape, qtype.name, n_el, n_el // block * type_size)
            )
        _resolve_special_tokens(r, meta, vocab_offsets)
    return meta


def _resolve_special_tokens(r: _Reader, meta: GGUFMetadata, offsets: list[int]) -> None:
    vocab = meta.get("tokenizer.ggml.tokens")
    for name in _WANTED_TOKEN_KEYS:
        tid = meta.get(f"tokenizer.ggml.{name}")
        if not isinstance(tid, int):
            continue
        if isinstance(vocab, list) and 0 <= tid < len(vocab):
            meta.special_tokens[name] = vocab[tid]
        elif 0 <= tid < len(offsets):
            r.fh.seek(offsets[tid])
            meta.special_tokens[name] = r.string()
