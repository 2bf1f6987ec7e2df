"""Turn a model name as people write it into a catalog entry.

``qwen2.5-0.5b-instruct``, ``Qwen2.5-0.5B-Instruct-Q4_K_M.gguf``, ``qwen2.5:0.5b``, ``gemma3-1b``,
``gemma-3-1b-it``, ``llama3.2-1b`` all resolve. A quant suffix in the name is returned separately.
"""

from __future__ import annotations

import re

from slmnode.catalog.families import BY_KEY, FAMILIES, ModelFamily
from slmnode.catalog.quants import QUANTS
from slmnode.errors import ModelNotFound

_QUANT_RE = re.compile(
    r"[-_.:](" + "|".join(sorted((re.escape(q) for q in QUANTS), key=len, reverse=True)) + r")$",
    re.IGNORECASE,
)


def _norm(name: str) -> str:
    s = name.strip().lower()
    s = re.sub(r"\.gguf$", "", s)
    s = s.rsplit("/", 1)[-1]
    s = s.replace("_", "-").replace(" ", "-")
    return s


def _variants(f: ModelFamily) -> set[str]:
    out = {f.key, *f.aliases}
    for v in list(out):
        out.add(v.replace(":", "-"))
        for suffix in ("-instruct", "-it", "-chat"):
            out.add(v + suffix)
            if v.endswith(suffix):
                out.add(v[: -len(suffix)])
    # "llama3.2" vs "llama-3.2", "qwen2.5" vs "qwen-2.5", "gemma3" vs "gemma-3"
    out |= {re.sub(r"^([a-z]+)-(\d)", r"\1\2", v) for v in list(out)}
    out |= {re.sub(r"^([a-z]+)(\d)", r"\1-\2", v) for v in list(out)}
    return {_norm(v) for v in out}


_INDEX: dict[str, ModelFamily] = {}
for _f in FAMILIES:
    for _v in _variants(_f):
        _INDEX.setdefault(_v, _f)


def split_quant(name: str) -> tuple[str, str | None]:
    """``"qwen2.5-0.5b-instruct-q4_k_m"`` -> (``"qwen2.5-0.5b-instruct"``, ``"Q4_K_M"``)."""
    base = re.sub(r"\.gguf$", "", name.strip(), flags=re.IGNORECASE)
    m = _QUANT_RE.search(base)
    if m:
        return base[: m.start()], m.group(1).upper()
    return base, None


def resolve_family(name: str) -> ModelFamily:
    """The catalog entry for ``name``; raises :class:`ModelNotFound` listing the known names."""
    base, _ = split_quant(name)
    key = _norm(base)
    if key in BY_KEY:
        return BY_KEY[key]
    found = _INDEX.get(key)
    if found is None:
        raise ModelNotFound(
            f"{name!r} is not in the model catalog; known: {', '.join(f.key for f in FAMILIES)}"
            " (or pass a path to a local .gguf)"
        )
    return found
