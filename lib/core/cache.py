"""Artifact cache: an expensive result (a trained model, a synthesized corpus) is built once.

The key is a hash of the artifact's name, its config and the *code version*: the source of
the modules that build it. Change the config or that code and the artifact is rebuilt;
change anything else and the book, the tests and other chapters reuse it. Artifacts are
``torch.save``-able trees of tensors, numbers, strings, lists and dicts, stored atomically
and loaded with ``weights_only=True``. A file lock stops two processes building one artifact
twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from filelock import FileLock

from . import paths
from .checkpoint import atomic_torch_save, atomic_write_bytes, safe_torch_load


def code_version(*objects: types.ModuleType | Callable | type | str) -> str:
    """A short hash of the source code of modules, functions or classes (or literal strings).

    A module is hashed from its file as it is on disk now, so every process computes the
    same key for the same file. A function or class is hashed from ``inspect.getsource``,
    which reads through Python's line cache: editing its file while a long build runs can
    shift what it returns, so prefer whole modules for long builds.
    """
    h = hashlib.sha256()
    for obj in objects:
        if isinstance(obj, str):
            data = obj.encode()
        elif isinstance(obj, types.ModuleType) and getattr(obj, "__file__", None):
            data = Path(obj.__file__).read_bytes()
        else:
            data = inspect.getsource(obj).encode()
        h.update(data)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _canonical(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__class__": type(obj).__name__, **_canonical(dataclasses.asdict(obj))}
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    raise TypeError(f"cannot key the cache on a {type(obj).__name__}: use plain values")


def artifact_key(name: str, config: Any, code: str) -> str:
    """The cache key of an artifact: sha256 of name, canonical config and code version."""
    blob = json.dumps({"name": name, "config": _canonical(config), "code": code}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class ArtifactCache:
    """Artifacts in ``directory`` (default ``lib.core.paths.cache_dir()``)."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory is not None else paths.cache_dir()
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, name: str, key: str) -> Path:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"artifact name {name!r}: use letters, digits, '-' and '_' only")
        return self.directory / f"{name}-{key}.pt"

    def get_or_create(self, name: str, config: Any, build: Callable[[], Any], *,
                      code: Iterable[types.ModuleType | Callable | type | str] = ()) -> Any:
        """Load the artifact for ``(name, config, code)`` or build it once with ``build()``."""
        key = artifact_key(name, config, code_version(*code))
        path = self.path(name, key)
        with FileLock(str(path) + ".lock"):
            if path.exists():
                digest_path = path.with_suffix(".pt.sha256")
                expected = digest_path.read_text().strip() if digest_path.exists() else None
                try:
                    if expected is None:
                        raise ValueError("no digest")
                    return safe_torch_load(path, expected_sha256=expected)
                except ValueError:
                    path.unlink(missing_ok=True)  # a broken artifact is rebuilt, not trusted
            artifact = build()
            digest = atomic_torch_save(artifact, path)
            atomic_write_bytes(path.with_suffix(".pt.sha256"), digest.encode())
            meta = {"name": name, "key": key, "config": _canonical(config)}
            atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=1).encode())
        return artifact

    def contains(self, name: str, config: Any, *, code: Iterable[Any] = ()) -> bool:
        """Whether the artifact is already cached (no build)."""
        return self.path(name, artifact_key(name, config, code_version(*code))).exists()
