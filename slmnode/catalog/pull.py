"""Fetch a GGUF from the Hugging Face hub (or an https URL) into the model store, safely.

Order of work, and why:

1. **Metadata only**: one ``HEAD /<repo>/resolve/<rev>/<file>`` through ``huggingface_hub``
   (``get_hf_file_metadata``) gives the size (``X-Linked-Size``), the sha256 (``X-Linked-Etag``, the LFS
   oid; else the model-info API's ``siblings[].lfs.sha256``), the commit, and the CDN location.
2. **Checks before any byte of the file**: free disk >= size - bytes already downloaded + the space to
   keep free; the caller's RAM-fit check (the CLI asks the planner: weights + KV cache at the configured
   context + buffers vs available RAM). A failed check raises :class:`InsufficientResources` with the
   numbers; ``force=True`` downloads anyway and records the override.
3. **Download** with ``huggingface_hub``'s ``http_get`` (retries, progress bar, ``Range`` resume) into
   ``<store>/downloads/sha256-<hex>.partial``. The partial file is named by the hub's sha256, so a pull
   that was interrupted (Ctrl-C, network, power) resumes where it stopped on the next run, and a file
   that changed upstream never gets appended to. (``hf_hub_download`` in huggingface_hub 2.x writes a
   per-process temporary file and deletes it on failure, so it cannot resume across runs.)
4. **Verify and register**: ``ModelStore.add_file(move=True, expected_sha256=...)`` hashes the file,
   refuses a mismatch (the file is deleted, nothing is registered) and renames it into ``blobs/``
   (same filesystem: no copy). Extra names (``qwen3.5:2b`` for ``qwen3.5:2b-q4_k_m``) point at the same
   blob.

This module never imports the planner or the hardware probe: the free-disk probe and the RAM-fit check
are callables the CLI passes in.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

from slmnode.catalog.aliases import FALLBACK_QUANT, PullTarget
from slmnode.catalog.resolve import resolve_family
from slmnode.catalog.store import Manifest, ModelStore
from slmnode.errors import (
    ChecksumMismatch,
    ConfigError,
    InsufficientResources,
    ModelFormatError,
    ModelNotFound,
    SlmnodeError,
    StoreError,
)

GiB = 1 << 30
MiB = 1 << 20
DEFAULT_KEEP_FREE = 1 * GiB  # left free after the download: logs, SQLite, apt and the OS need room
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ProgressBar(Protocol):
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    def update(self, n: int = 1) -> object: ...


ProgressFactory = Callable[..., ProgressBar]  # called with desc, total, initial, unit, unit_scale


class _SilentBar:
    def __init__(self, **_: Any) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None


@dataclass(frozen=True)
class RemoteFile:
    """A file as the hub (or web server) describes it, before any byte of it is fetched."""

    target: PullTarget
    filename: str
    url: str  # where the bytes come from (the CDN location for hub files)
    size_bytes: int
    sha256: str | None
    commit: str | None
    quant: str | None
    family: str | None  # catalog family key, when the name is known
    source: str  # recorded in the manifest

    @property
    def names(self) -> tuple[str, ...]:
        return self.target.names


@dataclass(frozen=True)
class RamFit:
    """The RAM check's verdict, with the numbers (built by the caller: :mod:`slmnode.planner.pull_check`)."""

    required_bytes: int
    available_bytes: int | None  # None: not knowable here (the check does not refuse)
    verdict: str  # yes | swap | no | unknown
    ctx: int
    where: str  # "this machine (MemAvailable)" / "device pi4-4gb (8.00 GiB - 1 GiB reserve)"
    basis: str  # what the estimate is made of
    breakdown: dict[str, int] = field(default_factory=dict)
    margin_bytes: int = 0  # headroom required over ``required_bytes``

    @property
    def fits(self) -> bool:
        return self.verdict in ("yes", "unknown")


@dataclass(frozen=True)
class Check:
    name: str  # disk | ram
    ok: bool
    message: str
    numbers: dict[str, Any]


@dataclass
class PullResult:
    names: list[str]
    source: str
    size_bytes: int
    sha256: str
    quant: str | None
    quant_source: str
    sha256_verified: bool  # against the hub's (or --sha256); False only for a plain URL without --sha256
    already_present: bool
    downloaded_bytes: int
    resumed_from: int
    forced: bool
    checks: list[Check]
    seconds: float
    manifest: Manifest

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["manifest"] = self.manifest.to_dict()
        return out


def parse_size(text: str) -> int:
    """``"2G"``, ``"500M"``, ``"1.5GiB"``, ``"0"`` -> bytes (K/M/G/T are powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise ConfigError(f"invalid size {text!r}; e.g. 2G, 500M, 0")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " "))


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / GiB:.2f} GiB" if abs(n) >= GiB else f"{n / MiB:.1f} MiB"


# -- metadata ---------------------------------------------------------------------------------------
def hub_endpoint(endpoint: str | None = None) -> str:
    """``endpoint``, else ``$HF_ENDPOINT`` (read now, not at import), else huggingface.co."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def network_errors() -> tuple[type[BaseException], ...]:
    """What a failed conversation with the hub or a web server raises, and nothing else: the transport and
    HTTP-status errors of httpx and of the client huggingface_hub uses (httpx2 in 2.x), and OSError
    (connection refused, offline mode, disk). Anything else is a bug and keeps its traceback."""
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[BaseException]] = [httpx.HTTPError, HfHubHTTPError, OSError]
    try:
        import httpx2  # huggingface_hub >= 2 talks HTTP through it
    except ImportError:  # pragma: no cover - older huggingface_hub uses httpx itself
        pass
    else:
        errors.append(httpx2.HTTPError)
    return tuple(errors)


def _hub_error(exc: BaseException, target: PullTarget, endpoint: str, gguf_files: Callable[[], list[str]]) -> SlmnodeError:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"hf://{target.repo}"
    if isinstance(exc, GatedRepoError):
        return ModelNotFound(f"{where} is gated: accept its licence on the hub and set HF_TOKEN", param="name")
    if isinstance(exc, RepositoryNotFoundError):
        return ModelNotFound(f"{where} does not exist on {endpoint} (or is private: set HF_TOKEN)", param="name")
    if isinstance(exc, RevisionNotFoundError):
        return ModelNotFound(f"{where} has no revision {target.revision!r}", param="name")
    if isinstance(exc, RemoteEntryNotFoundError):
        try:
            files = gguf_files()
        except network_errors():  # the listing only improves the message
            files = []
        listing = ", ".join(files) if files else "(could not list the repo)"
        return ModelNotFound(f"{where} has no file {target.filename!r}; its GGUF files: {listing}. "
                             "Pick one with --quant or hf://owner/repo/FILE.gguf", param="name")
    if isinstance(exc, HfHubHTTPError) or getattr(exc, "response", None) is not None:  # an HTTP status
        return StoreError(f"the hub at {endpoint} answered {exc}; try again later")
    return StoreError(f"cannot reach the hub at {endpoint}: {exc}; check the network (or HF_ENDPOINT)")


def _list_gguf(repo: str, revision: str, endpoint: str, token: str | bool | None) -> list[Any]:
    from huggingface_hub import HfApi

    info = HfApi(endpoint=endpoint).model_info(repo, revision=revision, files_metadata=True, token=token)
    return [s for s in (info.siblings or []) if s.rfilename.lower().endswith(".gguf")]


def _pick_by_quant(repo: str, names: list[str], quant: str) -> str:
    rx = re.compile(rf"(^|[-_.]){re.escape(quant)}\.gguf$", re.IGNORECASE)
    hits = sorted((n for n in names if rx.search(n) and not n.rsplit("/", 1)[-1].lower().startswith("mmproj")),
                  key=len)
    if not hits:
        raise ModelNotFound(f"hf://{repo} has no {quant} GGUF; its GGUF files: {', '.join(names) or '(none)'}",
                            param="name")
    return hits[0]


def describe_remote(
    target: PullTarget,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    expected_sha256: str | None = None,
) -> RemoteFile:
    """Size, sha256, commit and download location of ``target``: metadata requests only."""
    if target.kind == "url":
        return _describe_url(target, expected_sha256)
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    ep = hub_endpoint(endpoint)
    assert target.repo is not None
    repo: str = target.repo
    listing: list[Any] | None = None

    def gguf_files() -> list[str]:
        nonlocal listing
        if listing is None:
            listing = _list_gguf(repo, target.revision, ep, token)
        return [s.rfilename for s in listing]

    try:
        if target.filename is None:
            quant = target.quant or FALLBACK_QUANT
            filename = _pick_by_quant(repo, gguf_files(), quant)
            stem = filename.rsplit("/", 1)[-1][: -len(".gguf")]
            target = dataclasses.replace(target, filename=filename, quant=quant, names=target.names or (stem,))
        meta = get_hf_file_metadata(hf_hub_url(repo, target.filename or "", revision=target.revision,
                                               endpoint=ep), token=token, endpoint=ep, retry_on_errors=True)
        sha = meta.etag.lower() if meta.etag and _SHA256.match(meta.etag.lower()) else None
        if sha is None:  # not an LFS etag: ask the model-info API for the LFS oid
            sha = next((s.lfs.sha256 for s in (listing or _list_gguf(repo, target.revision, ep, token))
                        if s.rfilename == target.filename and s.lfs), None)
    except network_errors() as exc:  # one line naming the fix; anything else is a bug: it propagates
        raise _hub_error(exc, target, ep, gguf_files) from exc
    if meta.size is None:
        raise StoreError(f"the hub sent no size for {target.display}; cannot check disk space before downloading")
    if sha is None:
        raise StoreError(f"the hub has no sha256 for {target.display} (not an LFS file?); cannot verify it")
    if expected_sha256 and expected_sha256.lower() != sha:
        raise ChecksumMismatch(f"--sha256 {expected_sha256} differs from the hub's {sha} for {target.display}")
    family = target.family or _family_of(target.filename or "")
    commit = meta.commit_hash
    return RemoteFile(target, target.filename or "", meta.location, meta.size, sha, commit, target.quant, family,
                      f"hf://{target.repo}/{target.filename}@{commit or target.revision}")


def _family_of(filename: str) -> str | None:
    try:
        return resolve_family(filename.rsplit("/", 1)[-1]).key
    except ModelNotFound:
        return None


def _describe_url(target: PullTarget, expected_sha256: str | None) -> RemoteFile:
    import httpx

    assert target.url is not None
    try:
        r = httpx.head(target.url, follow_redirects=True, timeout=30, headers={"Accept-Encoding": "identity"})
        r.raise_for_status()
    except httpx.HTTPError as exc:
        raise StoreError(f"cannot read {target.url}: {exc}") from exc
    length = r.headers.get("Content-Length")
    if length is None or not length.isdigit():
        raise StoreError(f"{target.url} sends no Content-Length; cannot check disk space before downloading")
    sha = expected_sha256.lower() if expected_sha256 else None
    if sha is not None and not _SHA256.match(sha):
        raise ConfigError(f"--sha256 must be 64 hex digits, got {expected_sha256!r}")
    filename = target.url.rsplit("/", 1)[-1].split("?", 1)[0]
    return RemoteFile(target, filename, str(r.url), int(length), sha, None, target.quant, _family_of(filename),
                      target.url)


# -- checks -----------------------------------------------------------------------------------------
def check_disk(needed_bytes: int, free_bytes: int | None, keep_free: int, where: Path) -> Check:
    need = needed_bytes + keep_free
    numbers = {"free_bytes": free_bytes, "download_bytes": needed_bytes, "keep_free_bytes": keep_free,
               "needed_bytes": need, "path": str(where)}
    if free_bytes is None:
        return Check("disk", True, "free disk space unknown: not checked", numbers)
    ok = free_bytes >= need
    msg = (f"disk: {fmt_bytes(needed_bytes)} to download + {fmt_bytes(keep_free)} to keep free = {fmt_bytes(need)}"
           f" needed, {fmt_bytes(free_bytes)} free on {where}")
    if not ok:
        msg += "; free some space, set SLMNODE_HOME to a bigger disk, lower --keep-free, or pass --force"
    return Check("disk", ok, msg, numbers)


def check_ram(fit: RamFit | None, name: str) -> Check | None:
    if fit is None:
        return None
    parts = ", ".join(f"{k.replace('_', ' ')} {fmt_bytes(v)}" for k, v in fit.breakdown.items())
    margin = f" + {fmt_bytes(fit.margin_bytes)} margin" if fit.margin_bytes else ""
    msg = (f"RAM: {name} needs about {fmt_bytes(fit.required_bytes)}{margin} at ctx {fit.ctx} ({parts}; "
           f"{fit.basis}), {fmt_bytes(fit.available_bytes)} available on {fit.where}")
    if fit.verdict == "unknown":
        msg += ": available RAM unknown, not checked"
    if fit.verdict == "swap":
        msg += "; it would run only from swap (far below 1 tok/s)"
    if not fit.fits:
        msg += "; choose a smaller --quant or model, a smaller --ctx, or pass --force"
    numbers = {"required_bytes": fit.required_bytes, "available_bytes": fit.available_bytes, "ctx": fit.ctx,
               "margin_bytes": fit.margin_bytes, "verdict": fit.verdict, "where": fit.where, "basis": fit.basis,
               "breakdown": fit.breakdown}
    return Check("ram", fit.fits, msg, numbers)


# -- store helpers ----------------------------------------------------------------------------------
def _manifests_by_name(store: ModelStore) -> dict[str, Manifest]:
    return {m.name: m for m in store.list()}


def _drop_orphans(store: ModelStore, before: dict[str, Manifest]) -> None:
    """Blobs that a re-pulled name used to point at and nothing points at now."""
    used = {m.file for m in store.list()}
    for old in before.values():
        if old.file not in used:
            (store.root / old.file).unlink(missing_ok=True)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise StoreError(f"another pull of this file is running ({lock_path}); wait for it") from exc
            raise
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)


def partial_path(store: ModelStore, remote: RemoteFile) -> Path:
    key = f"sha256-{remote.sha256}" if remote.sha256 else "url-" + hashlib.sha256(remote.url.encode()).hexdigest()[:16]
    return store.root / "downloads" / f"{key}.partial"


def _download(remote: RemoteFile, dest: Path, have: int, token: str | bool | None, endpoint: str,
              progress: ProgressFactory) -> None:
    from urllib.parse import urlsplit

    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    same_origin = urlsplit(remote.url)[:2] == urlsplit(endpoint)[:2]
    headers = build_hf_headers(token=token if (remote.target.kind == "hf" and same_origin) else False)
    with dest.open("ab") as fh:
        http_get(remote.url, fh, resume_size=have, headers=headers, expected_size=remote.size_bytes,
                 displayed_filename=remote.filename, tqdm_class=progress)  # type: ignore[arg-type]
        fh.flush()
        os.fsync(fh.fileno())


# -- the whole pull ---------------------------------------------------------------------------------
def pull(
    target: PullTarget,
    *,
    store: ModelStore | None = None,
    force: bool = False,
    keep_free_bytes: int = DEFAULT_KEEP_FREE,
    free_disk: Callable[[Path], int | None] | None = None,
    ram_check: Callable[[RemoteFile], RamFit | None] | None = None,
    expected_sha256: str | None = None,
    name: str | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    progress: ProgressFactory | None = None,
    notify: Callable[[str], None] | None = None,
) -> PullResult:
    """Resolve, check, download, verify and register ``target``; see the module docstring."""
    t0 = time.perf_counter()
    store = store or ModelStore()
    bar: ProgressFactory = progress or _SilentBar
    say = notify or (lambda _msg: None)
    ep = hub_endpoint(endpoint)
    remote = describe_remote(target, endpoint=ep, token=token, expected_sha256=expected_sha256)
    names = [name] if name else list(remote.names)
    if not names:
        raise ConfigError(f"no store name for {remote.target.display}; pass --name")
    say(f"{names[0]}: {remote.source} ({fmt_bytes(remote.size_bytes)}, sha256 {(remote.sha256 or '?')[:12]})")
    before = _manifests_by_name(store)
    replaced = {n: before[n] for n in names if n in before and before[n].sha256 != remote.sha256}

    def result(manifest: Manifest, present: bool, got: int, resumed: int, checks: list[Check]) -> PullResult:
        return PullResult(names, remote.source, manifest.size_bytes, manifest.sha256, remote.quant,
                          remote.target.quant_source, remote.sha256 is not None, present, got, resumed,
                          force and any(not c.ok for c in checks), checks, time.perf_counter() - t0, manifest)

    # Already in the store (under any name): no download, just the names.
    same = [m for m in before.values() if remote.sha256 and m.sha256 == remote.sha256
            and store.path_of(m).is_file() and store.path_of(m).stat().st_size == m.size_bytes]
    if same:
        tagged = [same[0] if n == same[0].name else store.tag(same[0], n, remote.source) for n in names]
        _drop_orphans(store, replaced)
        say(f"already in the store as {same[0].name}: nothing to download")
        return result(tagged[0], True, 0, 0, [])

    dest = partial_path(store, remote)
    with _exclusive(dest.with_suffix(".lock")):
        have = dest.stat().st_size if dest.exists() else 0
        if have > remote.size_bytes:  # cannot be a prefix of this file
            dest.unlink()
            have = 0
        free = free_disk(dest.parent) if free_disk else None
        checks = [check_disk(remote.size_bytes - have, free, keep_free_bytes, dest.parent)]
        ram = check_ram(ram_check(remote) if ram_check else None, names[0])
        if ram is not None:
            checks.append(ram)
        failed = [c for c in checks if not c.ok]
        for c in checks:
            say(("ok   " if c.ok else ("FORCED " if force else "FAIL ")) + c.message)
        if failed and not force:
            err = InsufficientResources(f"refusing to download {names[0]}: " + " | ".join(c.message for c in failed))
            err.checks = checks  # type: ignore[attr-defined]
            raise err
        if have:
            say(f"resuming at {fmt_bytes(have)} of {fmt_bytes(remote.size_bytes)}")
        try:
            _download(remote, dest, have, token, ep, bar)
        except KeyboardInterrupt:
            raise
        except OSError as exc:  # huggingface_hub's size consistency check, or the disk
            if dest.exists() and dest.stat().st_size > remote.size_bytes:
                dest.unlink()
            got = dest.stat().st_size if dest.exists() else 0
            raise StoreError(f"download of {remote.filename} stopped at {fmt_bytes(got)} of "
                             f"{fmt_bytes(remote.size_bytes)}: {exc}; run the same command again to resume") from exc
        except network_errors() as exc:  # HTTP errors from huggingface_hub or httpx (OSError: above)
            got = dest.stat().st_size if dest.exists() else 0
            raise StoreError(f"download of {remote.filename} interrupted at {fmt_bytes(got)} of "
                             f"{fmt_bytes(remote.size_bytes)} ({type(exc).__name__}: {exc}); "
                             "run the same command again to resume") from exc
        got = dest.stat().st_size
        if got != remote.size_bytes:
            dest.unlink(missing_ok=True)
            raise StoreError(f"{remote.filename}: got {got} bytes, the source says {remote.size_bytes}; "
                             "the partial file was deleted, run the pull again")
        try:
            with bar(desc="verifying sha256", total=got, initial=0, unit="B", unit_scale=True) as vbar:
                def advance(n: int) -> None:
                    vbar.update(n)

                manifest = store.add_file(dest, names[0], source=remote.source, expected_sha256=remote.sha256,
                                          move=True, progress=advance)
        except ChecksumMismatch as exc:
            dest.unlink(missing_ok=True)
            raise ChecksumMismatch(f"{remote.filename}: downloaded bytes fail the sha256 check "
                                   f"({exc.message}); the file was deleted and nothing was registered. "
                                   "Run the pull again; if it repeats, the source is corrupt") from exc
        except ModelFormatError:
            dest.unlink(missing_ok=True)
            raise
    for extra in names[1:]:
        store.tag(manifest, extra)
    _drop_orphans(store, replaced)
    return result(manifest, False, got - have, have, checks)
