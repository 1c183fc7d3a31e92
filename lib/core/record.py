"""Metrics records: one JSON per run with metrics, config, scale, seed, versions, commit, time.

One record per chapter, scale and setup: ``<results>/<chapter>-<scale>.json`` for a
chapter's default setup, ``<chapter>-<scale>-<setup>.json`` for a named one (full-scale
runs of different setups never overwrite each other). A record written under a dry-run
step limit says so (``max_steps``), and the scoreboard never judges it.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from . import paths
from .checkpoint import atomic_write_bytes
from .config import SCALES, config_dict
from .limits import step_limit

TRACKED_PACKAGES = ("torch", "torchvision", "torchaudio", "numpy", "scipy", "scikit-learn",
                    "scikit-image", "gymnasium", "jupyter-book", "papermill")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide a result (absent ones are skipped)."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(repo: Path = paths.REPO_ROOT) -> str:
    """``HEAD``'s hash, with ``+dirty`` when the work tree has changes; ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty.strip() else "")


def _jsonable(value: Any) -> Any:
    """Plain JSON values from numpy/torch scalars, arrays and tuples; NaN/inf become None."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"metric value of type {type(value).__name__} is not JSON-serialisable")


@dataclass
class Stopwatch:
    """Wall time of a ``with timed():`` block, in seconds."""

    start: float = 0.0
    seconds: float = 0.0


@contextmanager
def timed():
    """``with timed() as t: ...`` then ``t.seconds``."""
    watch = Stopwatch(start=time.perf_counter())
    try:
        yield watch
    finally:
        watch.seconds = time.perf_counter() - watch.start


def make_record(chapter: str, scale: str, seed: int, config: Any, metrics: dict[str, Any],
                wall_time_s: float, **extra: Any) -> dict[str, Any]:
    """The record of one run; refuses an empty or time-less run (work that silently did not run)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid scales are {', '.join(SCALES)}")
    if not metrics:
        raise ValueError(f"{chapter}: empty metrics; the run produced nothing to record")
    if not wall_time_s > 0:
        raise ValueError(f"{chapter}: wall_time_s must be > 0, got {wall_time_s!r}")
    cfg = config_dict(config) if hasattr(config, "__dataclass_fields__") else dict(config)
    if step_limit() is not None:
        extra["max_steps"] = step_limit()
    return {
        "chapter": chapter,
        "scale": scale,
        "seed": seed,
        "metrics": _jsonable(metrics),
        "config": _jsonable(cfg),
        "wall_time_s": round(float(wall_time_s), 3),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **_jsonable(extra),
    }


def _setup_suffix(setup: str | None) -> str:
    if setup in (None, "", "default"):
        return ""
    if not str(setup).replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"setup name {setup!r}: use letters, digits, '-' and '_' only")
    return f"-{setup}"


def record_path(chapter: str, scale: str, out_dir: str | Path | None = None,
                setup: str | None = None) -> Path:
    """``<results>/<chapter>-<scale>.json`` (``-<setup>`` before ``.json`` for a named setup)."""
    base = Path(out_dir) if out_dir is not None else paths.results_dir()
    return base / f"{chapter}-{scale}{_setup_suffix(setup)}.json"


def records_of(chapter: str, scale: str, out_dir: str | Path | None = None
               ) -> list[tuple[str, Path]]:
    """``(setup, path)`` of every record of ``chapter`` at ``scale`` ("" = default setup)."""
    base = Path(out_dir) if out_dir is not None else paths.results_dir()
    found = []
    default = record_path(chapter, scale, base)
    if default.exists():
        found.append(("", default))
    prefix = f"{chapter}-{scale}-"
    for path in sorted(base.glob(f"{prefix}*.json")):
        found.append((path.stem[len(prefix):], path))
    return found


def write_record(chapter: str, scale: str, seed: int, config: Any, metrics: dict[str, Any],
                 wall_time_s: float, out_dir: str | Path | None = None,
                 **extra: Any) -> dict[str, Any]:
    """Write the record atomically to ``record_path(...)`` and return it (a ``setup=``
    extra names the setup's own record file)."""
    record = make_record(chapter, scale, seed, config, metrics, wall_time_s, **extra)
    path = record_path(chapter, scale, out_dir, extra.get("setup"))
    atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode())
    return record


def read_record(path: str | Path) -> dict[str, Any]:
    """Load a record and check it has what a record must have."""
    record = json.loads(Path(path).read_text())
    missing = {"chapter", "scale", "seed", "metrics", "config", "wall_time_s", "versions",
               "git_commit"} - set(record)
    if missing:
        raise ValueError(f"{path}: not a metrics record, missing {sorted(missing)}")
    return record
