"""What a model can do, from its GGUF metadata and chat template: Ollama's ``/api/show`` ``capabilities``.

=========== ==========================================================================================
capability  when
=========== ==========================================================================================
completion  a generative model: any model that is not an embedding model
embedding   ``{arch}.pooling_type`` is set (not 0, llama.cpp's "none") or the architecture is an
            encoder-only one (BERT and friends); such a model does not generate, so no ``completion``
tools       every generative model. Ollama says ``tools`` only when the template renders them; this
            node also serves tools to a model whose template knows none (the ``generic`` format: tools
            told in the prompt, a forced call held to its schema by the grammar), so clients that check
            for ``tools`` before sending them keep working. ``tool_format`` says which it is: a native
            family (``hermes``, ``llama3``, ``qwen-xml``...), ``gemma`` or ``generic``.
thinking    the template has a thinking mode (``enable_thinking``, ``<think>``, ``reasoning_content``)
vision      the file carries vision metadata (``{arch}.vision.*``, a projector's
            ``clip.has_vision_encoder``). This node serves text only today, so images are refused
            even then; the capability reports what the file holds, as Ollama does.
=========== ==========================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from slmnode.catalog.model_info import ModelInfo
from slmnode.chat.formats import detect

Capability = Literal["completion", "tools", "thinking", "embedding", "vision"]

# llama.cpp's encoder-only architectures: embedding (or reranking) models whatever their metadata says
EMBEDDING_ARCHITECTURES: frozenset[str] = frozenset({
    "bert", "nomic-bert", "nomic-bert-moe", "neo-bert", "jina-bert-v2", "jina-bert-v3", "modern-bert",
    "t5encoder", "gemma-embedding",
})


@dataclass(frozen=True)
class Capabilities:
    names: tuple[Capability, ...]  # in Ollama's order: completion/embedding, tools, thinking, vision
    tool_format: str | None  # the tool-call family (chat.formats.spec), None for embedding models

    def __contains__(self, name: object) -> bool:
        return name in self.names


def capabilities(info: ModelInfo) -> Capabilities:
    """The capabilities of the model ``info`` describes (pure: no file is read)."""
    if (info.pooling_type or 0) != 0 or info.architecture in EMBEDDING_ARCHITECTURES:
        return Capabilities(("embedding",), None)
    spec = detect(info.chat_template, info.architecture)
    names: list[Capability] = ["completion", "tools"]
    if spec.thinking:
        names.append("thinking")
    if info.vision:
        names.append("vision")
    return Capabilities(tuple(names), spec.family)
