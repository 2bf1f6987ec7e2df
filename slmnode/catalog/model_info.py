"""What a GGUF model is, in the terms people and the planner use."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gguf

from slmnode.catalog.gguf_meta import GGUFMetadata, read_metadata


def _file_type_name(value: int | None) -> str | None:
    if value is None:
        return None
    try:
        name = gguf.LlamaFileType(value).name
    except ValueError:
        return f"type-{value}"
    return name.removeprefix("MOSTLY_").replace("ALL_", "")


@dataclass(frozen=True)
class ModelInfo:
    path: str
    size_bytes: int
    architecture: str
    name: str | None
    size_label: str | None
    parameter_count: int
    quant_type: str | None
    context_length: int | None
    block_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    key_length: int | None
    value_length: int | None
    sliding_window: int | None
    vocab_size: int | None
    has_chat_template: bool
    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    eot_token: str | None
    pooling_type: int | None = None  # {arch}.pooling_type: set on embedding models (llama.cpp's enum, 0 = none)
    vision: bool = False  # vision metadata in the file ({arch}.vision.*, a CLIP projector's has_vision_encoder)

    def to_dict(self, *, with_template: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not with_template:
            out.pop("chat_template")
        return out

    @property
    def parameter_size(self) -> str:
        """Ollama-style parameter size, e.g. ``268.10M``."""
        n = self.parameter_count
        return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def model_info(path: str | Path, meta: GGUFMetadata | None = None) -> ModelInfo:
    """Read ``path``'s GGUF header into a :class:`ModelInfo`."""
    meta = meta or read_metadata(path)
    arch = str(meta.get("general.architecture", "unknown"))

    def a(key: str) -> Any:
        return meta.get(f"{arch}.{key}")

    head_count = a("attention.head_count")
    head_count_kv = a("attention.head_count_kv")
    embedding = a("embedding_length")
    key_length = a("attention.key_length") or (
        embedding // head_count if embedding and isinstance(head_count, int) and head_count else None
    )
    vocab = meta.array_lengths.get("tokenizer.ggml.tokens")
    if vocab is None and isinstance(meta.get("tokenizer.ggml.tokens"), list):
        vocab = len(meta.get("tokenizer.ggml.tokens"))
    template = meta.get("tokenizer.chat_template")
    return ModelInfo(
        path=str(meta.path),
        size_bytes=meta.path.stat().st_size,
        architecture=arch,
        name=meta.get("general.name"),
        size_label=meta.get("general.size_label"),
        parameter_count=sum(t.n_elements for t in meta.tensors),
        quant_type=_file_type_name(meta.get("general.file_type")),
        context_length=a("context_length"),
        block_count=a("block_count"),
        embedding_length=embedding,
        head_count=head_count if isinstance(head_count, int) else None,
        head_count_kv=head_count_kv if isinstance(head_count_kv, int) else head_count,
        key_length=key_length,
        value_length=a("attention.value_length") or key_length,
        sliding_window=a("attention.sliding_window"),
        vocab_size=vocab,
        has_chat_template=bool(template),
        chat_template=template if isinstance(template, str) else None,
        bos_token=meta.special_tokens.get("bos_token_id"),
        eos_token=meta.special_tokens.get("eos_token_id"),
        eot_token=meta.special_tokens.get("eot_token_id"),
        pooling_type=a("pooling_type") if isinstance(a("pooling_type"), int) else None,
        vision=bool(meta.get("clip.has_vision_encoder")) or any(k.startswith(f"{arch}.vision.") for k in meta.kv),
    )
