"""Model names as Ollama users write them, mapped to a GGUF file on the Hugging Face hub.

``qwen3.5:2b`` -> ``unsloth/Qwen3.5-2B-GGUF`` / ``Qwen3.5-2B-Q4_K_M.gguf``. A quant in the tag
(``qwen3.5:2b-q4_k_s``, ``llama3.2:3b-instruct-q4_K_M``) or ``--quant`` picks the file; with neither,
the caller's default applies (the CLI asks the planner, else ``Q4_K_M``). Besides aliases,
:func:`resolve_target` accepts ``hf://owner/repo[@revision]/file.gguf`` (or ``hf://owner/repo`` plus a
quant) and plain ``https://`` URLs; a ``huggingface.co/<repo>/resolve|blob/<rev>/<file>`` URL is
treated as the hub file it names.

Every repository is a well-known instruct GGUF repo (docs/models.md lists which file names were
checked against public sources and how). ``quants`` are the types each publisher usually uploads;
a quant outside that list is still tried, and when the hub has no such file the error lists the
``.gguf`` files the repository does have.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import unquote, urlsplit

from slmnode.catalog.quants import QUANTS
from slmnode.errors import ConfigError, ModelNotFound

FALLBACK_QUANT = "Q4_K_M"

# What each publisher uploads for the small models (their usual set; see docs/models.md).
UNSLOTH = ("Q3_K_S", "Q3_K_M", "IQ4_XS", "IQ4_NL", "Q4_0", "Q4_K_S", "Q4_K_M", "Q4_1", "Q5_K_S", "Q5_K_M",
           "Q6_K", "Q8_0")
BARTOWSKI = ("Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ4_XS", "Q4_0", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
             "Q8_0")
QWEN_OFFICIAL = ("Q2_K", "Q3_K_M", "Q4_0", "Q4_K_M", "Q5_0", "Q5_K_M", "Q6_K", "Q8_0")


@dataclass(frozen=True)
class Alias:
    name: str  # "qwen3.5:2b"
    family: str  # key in slmnode.catalog.families (architecture facts for the planner)
    repo: str  # Hugging Face repo id
    file_pattern: str  # "{QUANT}" -> "Q4_K_M", "{quant}" -> "q4_k_m"
    quants: tuple[str, ...]

    def filename(self, quant: str) -> str:
        return self.file_pattern.replace("{QUANT}", quant.upper()).replace("{quant}", quant.lower())


A = Alias
ALIASES: dict[str, Alias] = {a.name: a for a in [
    A("qwen3.5:0.8b", "qwen3.5-0.8b", "unsloth/Qwen3.5-0.8B-GGUF", "Qwen3.5-0.8B-{QUANT}.gguf", UNSLOTH),
    A("qwen3.5:2b", "qwen3.5-2b", "unsloth/Qwen3.5-2B-GGUF", "Qwen3.5-2B-{QUANT}.gguf", UNSLOTH),
    A("qwen3.5:4b", "qwen3.5-4b", "unsloth/Qwen3.5-4B-GGUF", "Qwen3.5-4B-{QUANT}.gguf", UNSLOTH),
    A("qwen3:0.6b", "qwen3-0.6b", "unsloth/Qwen3-0.6B-GGUF", "Qwen3-0.6B-{QUANT}.gguf", UNSLOTH),
    A("qwen2.5:0.5b", "qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
      "qwen2.5-0.5b-instruct-{quant}.gguf", QWEN_OFFICIAL),
    A("qwen2.5:1.5b", "qwen2.5-1.5b-instruct", "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
      "qwen2.5-1.5b-instruct-{quant}.gguf", QWEN_OFFICIAL),
    A("qwen2.5:3b", "qwen2.5-3b-instruct", "Qwen/Qwen2.5-3B-Instruct-GGUF",
      "qwen2.5-3b-instruct-{quant}.gguf", QWEN_OFFICIAL),
    A("gemma3:270m", "gemma3-270m", "unsloth/gemma-3-270m-it-GGUF", "gemma-3-270m-it-{QUANT}.gguf", UNSLOTH),
    A("gemma3:1b", "gemma3-1b", "unsloth/gemma-3-1b-it-GGUF", "gemma-3-1b-it-{QUANT}.gguf", UNSLOTH),
    A("gemma3:4b", "gemma3-4b", "unsloth/gemma-3-4b-it-GGUF", "gemma-3-4b-it-{QUANT}.gguf", UNSLOTH),
    A("llama3.2:1b", "llama3.2-1b", "bartowski/Llama-3.2-1B-Instruct-GGUF",
      "Llama-3.2-1B-Instruct-{QUANT}.gguf", BARTOWSKI),
    A("llama3.2:3b", "llama3.2-3b", "bartowski/Llama-3.2-3B-Instruct-GGUF",
      "Llama-3.2-3B-Instruct-{QUANT}.gguf", BARTOWSKI),
    A("smollm2:135m", "smollm2-135m", "bartowski/SmolLM2-135M-Instruct-GGUF",
      "SmolLM2-135M-Instruct-{QUANT}.gguf", BARTOWSKI),
    A("smollm2:360m", "smollm2-360m", "bartowski/SmolLM2-360M-Instruct-GGUF",
      "SmolLM2-360M-Instruct-{QUANT}.gguf", BARTOWSKI),
    A("smollm2:1.7b", "smollm2-1.7b", "bartowski/SmolLM2-1.7B-Instruct-GGUF",
      "SmolLM2-1.7B-Instruct-{QUANT}.gguf", BARTOWSKI),
    A("phi3.5:3.8b", "phi3.5-mini", "bartowski/Phi-3.5-mini-instruct-GGUF",
      "Phi-3.5-mini-instruct-{QUANT}.gguf", BARTOWSKI),
    A("phi4-mini:3.8b", "phi4-mini", "unsloth/Phi-4-mini-instruct-GGUF", "Phi-4-mini-instruct-{QUANT}.gguf",
      UNSLOTH),
]}
# A bare name means Ollama's default tag, where that tag is one of ours (qwen2.5, qwen3 default to
# sizes this table does not carry, so they need a tag).
LATEST: dict[str, str] = {"gemma3": "gemma3:4b", "llama3.2": "llama3.2:3b", "smollm2": "smollm2:1.7b",
                          "phi3.5": "phi3.5:3.8b", "phi4-mini": "phi4-mini:3.8b"}

_QUANT_SUFFIX = re.compile(
    r"[-_](" + "|".join(sorted((re.escape(q) for q in QUANTS), key=len, reverse=True)) + r")$", re.IGNORECASE)
_VARIANT_SUFFIX = re.compile(r"-(instruct|it|chat)$", re.IGNORECASE)
_HUB_HOSTS = ("huggingface.co", "hf.co")


@dataclass(frozen=True)
class PullTarget:
    """What to fetch and under which store names. ``filename`` None = pick by ``quant`` from the repo."""

    kind: Literal["hf", "url"]
    names: tuple[str, ...]  # store names to register; the first is the canonical one
    repo: str | None = None
    filename: str | None = None
    revision: str = "main"
    url: str | None = None
    quant: str | None = None
    quant_source: str = "given"  # given | file name | planner | fallback
    alias: Alias | None = None
    family: str | None = None  # catalog family key, when known

    @property
    def display(self) -> str:
        if self.kind == "url":
            return str(self.url)
        return f"hf://{self.repo}/{self.filename or '?'}"


def split_alias(name: str) -> tuple[Alias, str | None, str]:
    """``"llama3.2:3b-instruct-q4_K_M"`` -> (alias, ``"Q4_K_M"``, typed base name)."""
    raw = name.strip()
    base, quant = raw, None
    m = _QUANT_SUFFIX.search(base)
    if m and ":" in base:
        base, quant = base[: m.start()], m.group(1).upper()
    base = _VARIANT_SUFFIX.sub("", base).lower()
    if base.endswith(":latest"):
        base = base.removesuffix(":latest")
    key = LATEST.get(base, base)
    alias = ALIASES.get(key)
    if alias is None:
        family = base.split(":", 1)[0]
        tags = sorted(a for a in ALIASES if a.split(":", 1)[0] == family)
        hint = f"known tags of {family}: {', '.join(tags)}" if tags else f"known: {', '.join(ALIASES)}"
        raise ModelNotFound(f"no model alias {name!r}; {hint} (or pull hf://owner/repo/file.gguf or an https URL)",
                            param="name")
    return alias, quant, base


def _check_quant(quant: str) -> str:
    q = quant.strip().upper()
    if not re.fullmatch(r"[A-Z0-9_]+", q):
        raise ConfigError(f"invalid quant {quant!r}; e.g. Q4_K_M, Q4_K_S, Q8_0")
    return q


def _hf_target(repo: str, path: str, revision: str, quant: str | None) -> PullTarget:
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ConfigError(f"hf:// needs owner/repo, got {repo!r}; e.g. hf://unsloth/gemma-3-1b-it-GGUF/"
                          "gemma-3-1b-it-Q4_K_M.gguf")
    if path and not path.lower().endswith(".gguf"):
        raise ConfigError(f"{path!r} is not a .gguf file; name a .gguf in the repo, or give only the repo and a "
                          "--quant")
    filename = path or None
    file_quant = None
    if filename:
        stem = filename.rsplit("/", 1)[-1][: -len(".gguf")]
        m = _QUANT_SUFFIX.search(stem)
        file_quant = m.group(1).upper() if m else None
        names: tuple[str, ...] = (stem,)
    else:
        names = ()
    return PullTarget("hf", names, repo=repo, filename=filename, revision=revision,
                      quant=file_quant or quant, quant_source="file name" if file_quant else "given")


def _parse_hf(rest: str, quant: str | None) -> PullTarget:
    parts = [p for p in rest.split("/") if p]
    if len(parts) < 2:
        raise ConfigError(f"hf://{rest}: expected hf://owner/repo/file.gguf")
    owner, repo = parts[0], parts[1]
    revision = "main"
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    repo_quant = None
    if ":" in repo:  # Ollama style hf.co/owner/repo:Q4_K_M
        repo, repo_quant = repo.split(":", 1)
    return _hf_target(f"{owner}/{repo}", "/".join(parts[2:]), revision, quant or repo_quant)


def _parse_url(url: str, quant: str | None) -> PullTarget:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    segs = [unquote(s) for s in parts.path.split("/") if s]
    if host in _HUB_HOSTS and len(segs) >= 5 and segs[2] in ("resolve", "blob"):
        return _hf_target(f"{segs[0]}/{segs[1]}", "/".join(segs[4:]), segs[3], quant)
    if parts.scheme != "https" and host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"refusing {parts.scheme}:// for a download; use an https:// URL")
    name = segs[-1] if segs else ""
    if not name.lower().endswith(".gguf"):
        raise ConfigError(f"{url} does not name a .gguf file")
    stem = name[: -len(".gguf")]
    m = _QUANT_SUFFIX.search(stem)
    return PullTarget("url", (stem,), url=url, quant=m.group(1).upper() if m else quant,
                      quant_source="file name" if m else "given")


def resolve_target(
    name: str,
    quant: str | None = None,
    *,
    default_quant: Callable[[Alias], tuple[str, str] | None] | None = None,
    revision: str | None = None,
) -> PullTarget:
    """Turn NAME (alias, ``hf://``, or URL) into a :class:`PullTarget`.

    ``default_quant(alias)`` returns ``(quant, why)`` when no quant is given (the CLI asks the planner);
    None or no callable means :data:`FALLBACK_QUANT`.
    """
    q = _check_quant(quant) if quant else None
    text = name.strip()
    if text.startswith("hf://"):
        target = _parse_hf(text[len("hf://"):], q)
    elif text.startswith(("hf.co/", "huggingface.co/")):
        target = _parse_hf(text.split("/", 1)[1], q)
    elif "://" in text:
        target = _parse_url(text, q)
    else:
        alias, tag_quant, typed = split_alias(text)
        if q and tag_quant and q != tag_quant:
            raise ConfigError(f"{name!r} names quant {tag_quant} but --quant says {q}; give one")
        chosen, why = q or tag_quant, "given"
        if chosen is None:
            picked = default_quant(alias) if default_quant else None
            chosen, why = picked if picked else (FALLBACK_QUANT, "fallback")
        names = [f"{alias.name}-{chosen.lower()}"]
        if why != "given":  # the short name means "the default quant", as in Ollama
            names += [n for n in dict.fromkeys([alias.name, typed]) if n not in names]
        return PullTarget("hf", tuple(names), repo=alias.repo, filename=alias.filename(chosen),
                          revision=revision or "main", quant=chosen, quant_source=why, alias=alias,
                          family=alias.family)
    if revision and target.kind == "hf":
        target = replace(target, revision=revision)
    return target
