"""Which model a plan is about: a local .gguf path, a model in the store, or a catalog name."""

from __future__ import annotations

from pathlib import Path

from slmnode.catalog.embedded import DEFAULT_EMBEDDED, embedded
from slmnode.catalog.quants import get_quant
from slmnode.catalog.resolve import resolve_family, split_quant
from slmnode.catalog.store import DEFAULT_ALIASES, ModelStore
from slmnode.errors import ModelNotFound
from slmnode.planner.model_facts import ModelFacts, facts_from_family, facts_from_gguf


def facts_for(name: str | None, quant: str | None = None, store: ModelStore | None = None) -> tuple[ModelFacts, bool]:
    """Facts for ``name`` and whether it is instruction-tuned.

    Order: an embedded model (``None``/``default`` = the default one; exact), an existing ``.gguf`` path
    (exact), a model in the store (exact), a catalog name with ``quant`` (or the quant in the name,
    default Q4_K_M; estimated).
    """
    name = name or "default"
    model = DEFAULT_EMBEDDED if name in DEFAULT_ALIASES else embedded(name)
    if model is not None:
        store = store or ModelStore()
        path = store.path_of(store.ensure_embedded(model.name))
        return facts_from_gguf(path), model.instruct
    p = Path(name).expanduser()
    if p.suffix.lower() == ".gguf" and p.is_file():
        facts = facts_from_gguf(p)
        return facts, not _looks_base(p.name)
    if quant is None:
        store = store or ModelStore()
        try:
            manifest = store.get(name)
        except ModelNotFound:
            pass
        else:
            facts = facts_from_gguf(store.path_of(manifest))
            return facts, not _looks_base(manifest.name)
    family = resolve_family(name)
    _, named_quant = split_quant(name)
    return facts_from_family(family, get_quant(quant or named_quant or "Q4_K_M")), family.instruct


def _looks_base(name: str) -> bool:
    low = name.lower()
    return "-pt" in low or "base" in low
