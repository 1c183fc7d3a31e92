"""Artifact cache: an expensive result (a trained model, a synthesized corpus) is built once.

The key is a hash of the artifact's name, its config, the keys of the artifacts it is built
on, and the *code version* of its builder: the source of the builder's module and of every
library module that one imports, directly or transitively (``lib.core.codegraph``). Nothing
is listed by hand: change the config, a parent artifact or any of that code and the artifact
is rebuilt; change anything else and the book, the tests and other chapters reuse it.
Artifacts are ``torch.save``-able trees of tensors, numbers, strings, lists and dicts,
stored atomically and loaded with ``weights_only=True``. A file lock stops two processes
building one artifact twice. A corrupt file is reported (``CacheWarning``, naming the file)
before it is rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock

from . import paths
from .checkpoint import atomic_torch_save, atomic_write_bytes, safe_torch_load
from .codegraph import CodeRoot, code_version, modules_behind
from .limits import step_limit

_PLAIN = (str, int, float, bool, complex, type(None))


def _leaf_loads(value: Any) -> bool:
    """Whether ``torch.load(..., weights_only=True)`` reads ``value`` back (tried once per
    type, in memory)."""
    import io

    import torch

    kind = type(value)
    if kind not in _LOADABLE:
        buffer = io.BytesIO()
        try:
            torch.save(value, buffer)
            buffer.seek(0)
            torch.load(buffer, weights_only=True)
            _LOADABLE[kind] = True
        except Exception:  # noqa: BLE001 - any failure means weights_only cannot read it
            _LOADABLE[kind] = False
    return _LOADABLE[kind]


_LOADABLE: dict[type, bool] = {}


def unloadable_part(obj: Any, where: str = "artifact") -> str | None:
    """The first place in ``obj`` that ``torch.load(weights_only=True)`` cannot read back
    (``"artifact['scores'][0]: numpy.ndarray"``), or ``None`` when all of it loads.

    Stored anyway, such an artifact would fail to load on every later run and be rebuilt
    each time: the cache refuses it when it is built instead."""
    import torch

    # exact types: numpy.float64 is a float subclass and does not load weights-only
    if isinstance(obj, (torch.Tensor, torch.dtype, torch.Size, torch.device)) or \
            type(obj) in _PLAIN:
        return None
    if isinstance(obj, dict):
        for k, v in obj.items():
            if type(k) not in _PLAIN:
                return f"{where}: key {k!r} of type {type(k).__module__}.{type(k).__name__}"
            found = unloadable_part(v, f"{where}[{k!r}]")
            if found:
                return found
        if type(obj) is dict:
            return None
        try:
            empty = type(obj)()
        except TypeError:
            empty = None
        return None if empty is not None and _leaf_loads(empty) else \
            f"{where}: {type(obj).__module__}.{type(obj).__name__}"
    if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            found = unloadable_part(v, f"{where}[{i}]")
            if found:
                return found
        return None
    if _leaf_loads(obj):
        return None
    return f"{where}: {type(obj).__module__}.{type(obj).__name__}"


class CacheWarning(UserWarning):
    """A cached artifact was unreadable (corrupt, truncated, no digest) and is rebuilt."""


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


def artifact_key(name: str, config: Any, code: str, depends_on: Sequence[str] = ()) -> str:
    """The cache key: sha256 of name, canonical config, code version and parents' keys."""
    content = {"name": name, "config": _canonical(config), "code": code,
               "depends_on": list(depends_on)}
    if step_limit() is not None:  # a dry run's artifacts never serve a real run
        content["max_steps"] = step_limit()
    blob = json.dumps(content, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def run_key(name: str, config: Any, *, code: Iterable[CodeRoot],
            depends_on: Sequence[str] = ()) -> str:
    """The identity of a run (for its checkpoints): like an artifact key, from the run's
    name, config, code (module closure) and the keys it builds on."""
    code = list(code)
    if not code:
        raise ValueError(f"{name!r}: give the builder (or training function) or its module as code")
    return artifact_key(name, config, code_version(*code), depends_on)


class ArtifactCache:
    """Artifacts in ``directory`` (default ``lib.core.paths.cache_dir()``)."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory is not None else paths.cache_dir()
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, name: str, key: str) -> Path:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"artifact name {name!r}: use letters, digits, '-' and '_' only")
        return self.directory / f"{name}-{key}.pt"

    def key(self, name: str, config: Any, *, code: Iterable[CodeRoot],
            depends_on: Sequence[str] = ()) -> str:
        """The key ``get_or_create`` uses for a builder whose code roots are ``code``.

        ``code`` names the builder (or its module); its library imports are found by
        ``lib.core.codegraph``. ``depends_on`` holds the keys of the artifacts it is built
        on (a fine-tuned model lists its dense model's key).
        """
        return run_key(name, config, code=code, depends_on=depends_on)

    def checkpoint_dir(self, name: str, key: str) -> Path:
        """The checkpoint folder of the run that builds artifact ``(name, key)``: one
        folder per run key, so a run resumes only its own checkpoints."""
        self.path(name, key)  # validates the name
        return self.directory / "checkpoints" / f"{name}-{key}"

    def get_or_create(self, name: str, config: Any, build: Callable[[], Any], *,
                      code: Iterable[CodeRoot] | None = None,
                      depends_on: Sequence[str] = ()) -> Any:
        """Load the artifact for ``(name, config, code, depends_on)`` or build it once.

        ``code`` defaults to ``[build]``: the module that defines the builder and everything
        it imports from ``lib``.
        """
        code = [build] if code is None else list(code)
        key = self.key(name, config, code=code, depends_on=depends_on)
        path = self.path(name, key)
        with FileLock(str(path) + ".lock"):
            if path.exists():
                digest_path = path.with_suffix(".pt.sha256")
                try:
                    if not digest_path.exists():
                        raise ValueError(f"{path}: no digest file (the write was interrupted)")
                    return safe_torch_load(path, expected_sha256=digest_path.read_text().strip())
                except (ValueError, OSError) as err:
                    warnings.warn(f"cached artifact {path} is unreadable ({err}); rebuilding it",
                                  CacheWarning, stacklevel=2)
                    path.unlink(missing_ok=True)
            artifact = build()
            bad = unloadable_part(artifact)
            if bad:
                raise TypeError(
                    f"artifact {name!r} cannot be cached: {bad} would not load back with "
                    "torch.load(weights_only=True), so every later run would rebuild it. Store "
                    "tensors, numbers, strings, lists and dicts (torch.as_tensor for a numpy "
                    "array, dataclasses.asdict for a dataclass)")
            digest = atomic_torch_save(artifact, path)
            atomic_write_bytes(path.with_suffix(".pt.sha256"), digest.encode())
            meta = {"name": name, "key": key, "config": _canonical(config),
                    "depends_on": list(depends_on), "code_modules": modules_behind(*code)}
            atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=1).encode())
        return artifact

    def get_or_train(self, name: str, config: Any, train: Callable[[Path, str], Any], *,
                     code: Iterable[CodeRoot] | None = None,
                     depends_on: Sequence[str] = ()) -> Any:
        """``get_or_create`` for a long run that checkpoints: ``train(ckpt_dir, run_key)``.

        ``ckpt_dir`` is the run's own folder (``checkpoint_dir(name, key)``) and ``run_key``
        the artifact's key, to hand to ``train_loop``: a killed build resumes from its own
        checkpoints and never from another config's. Once the artifact is stored, the
        checkpoints are removed.
        """
        code = [train] if code is None else list(code)
        key = self.key(name, config, code=code, depends_on=depends_on)
        ckpt = self.checkpoint_dir(name, key)
        artifact = self.get_or_create(name, config, lambda: train(ckpt, key), code=code,
                                      depends_on=depends_on)
        if ckpt.exists() and self.path(name, key).exists():
            shutil.rmtree(ckpt, ignore_errors=True)
        return artifact

    def contains(self, name: str, config: Any, *, code: Iterable[CodeRoot],
                 depends_on: Sequence[str] = ()) -> bool:
        """Whether the artifact is already cached (no build)."""
        return self.path(name, self.key(name, config, code=code, depends_on=depends_on)).exists()
