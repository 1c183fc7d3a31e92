"""Atomic checkpoints that survive being killed, and resume only their own run.

A checkpoint is ``step-<N>.pt`` (``torch.save`` of plain tensors, numbers, strings, lists
and dicts, so it loads with ``weights_only=True``) plus ``step-<N>.pt.sha256``. Both are
written to a temporary file, flushed, fsynced and renamed into place; the digest goes last,
so a checkpoint without a matching digest is incomplete or corrupted and is skipped with a
warning in favour of the previous good one.

**Identity.** A folder belongs to one run, named by its *run key* (a hash of the run's
config and code, ``lib.core.run_key``): ``run.json`` in the folder and every checkpoint
record it. A manager opened with another key refuses to resume from them (a
``ForeignCheckpointWarning``), moves them aside to ``other-runs/`` (nothing is deleted) and
the run starts fresh. Rotation keeps the ``keep`` newest checkpoints *that verify* and never
deletes the newest good one, whatever the step numbers of broken files.

Files are written with the permissions the umask allows (a shared cache stays readable).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^step-(\d{9})\.pt$")


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it is corrupted, truncated or incomplete."""


class ForeignCheckpointWarning(CheckpointWarning):
    """Checkpoints of another run (other config or code) were found and not resumed."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems refuse to open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same dir, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_current_umask())  # mkstemp makes 0600; honour the umask
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_torch_save(obj: Any, path: str | Path) -> str:
    """``torch.save`` ``obj`` atomically to ``path``; return the sha256 of the bytes written."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def safe_torch_load(path: str | Path, *, expected_sha256: str | None = None) -> Any:
    """Load a file written by ``atomic_torch_save`` with ``weights_only=True``.

    Raises ``ValueError`` when the digest does not match or the file cannot be parsed.
    """
    path = Path(path)
    data = path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ValueError(f"{path}: sha256 mismatch (corrupted or truncated file)")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any parse failure means a bad file
        raise ValueError(f"{path}: cannot be loaded ({type(err).__name__}: {err})") from err


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


class CheckpointManager:
    """The checkpoints of one run (``run_key``) in ``directory``; keeps the ``keep`` newest
    good ones."""

    RUN_FILE = "run.json"

    def __init__(self, directory: str | Path, keep: int = 2, *, run_key: str | None = None):
        if keep < 1:
            raise ValueError(f"keep must be >= 1 (the newest good checkpoint), got {keep}")
        if run_key is not None and (not isinstance(run_key, str) or not run_key):
            raise ValueError(f"run_key must be a non-empty string, got {run_key!r}")
        self.directory = Path(directory)
        self.keep = keep
        self.run_key = run_key
        self._claimed = False

    def path_for(self, step: int) -> Path:
        return self.directory / f"step-{int(step):09d}.pt"

    def steps(self) -> list[int]:
        """Steps of the checkpoint files present (good or not), oldest first."""
        if not self.directory.exists():
            return []
        found = (_NAME.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def complete_steps(self) -> list[int]:
        """Steps whose checkpoint has its digest written (not verified), oldest first."""
        return [s for s in self.steps() if self.path_for(s).with_suffix(".pt.sha256").exists()]

    def verifies(self, step: int) -> bool:
        """Whether checkpoint ``step`` is complete and matches its digest (bytes only)."""
        path = self.path_for(step)
        digest = path.with_suffix(".pt.sha256")
        try:
            return digest.exists() and _file_sha256(path) == digest.read_text().strip()
        except OSError:
            return False

    def folder_run_key(self) -> str | None:
        """The run key recorded in the folder's ``run.json`` (None if absent)."""
        try:
            return json.loads((self.directory / self.RUN_FILE).read_text())["run_key"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _claim(self) -> None:
        """Make the folder this run's: foreign checkpoints move to ``other-runs/``."""
        if self._claimed or self.run_key is None:
            return
        self._claimed = True
        owner = self.folder_run_key()
        if owner == self.run_key:
            return
        present = [p for p in self.directory.glob("step-*")] if self.directory.exists() else []
        if present:
            label = owner or "unknown-run"
            aside = self.directory / "other-runs" / label
            n = 0
            while aside.exists():
                n += 1
                aside = self.directory / "other-runs" / f"{label}-{n}"
            aside.mkdir(parents=True)
            for p in present:
                shutil.move(str(p), aside / p.name)
            warnings.warn(
                f"{self.directory} holds checkpoints of another run ({label}), not of this run "
                f"({self.run_key}): not resuming from them; they were moved to {aside} and "
                f"this run starts fresh", ForeignCheckpointWarning, stacklevel=3)
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.directory / self.RUN_FILE,
                           json.dumps({"run_key": self.run_key}).encode())

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write the checkpoint for ``step`` atomically, then keep only the ``keep`` newest
        checkpoints that verify (broken files go; the newest good one always stays)."""
        self._claim()
        path = self.path_for(step)
        digest = atomic_torch_save({"step": int(step), "run_key": self.run_key, "state": state},
                                   path)
        atomic_write_bytes(path.with_suffix(".pt.sha256"), digest.encode())
        good = [s for s in reversed(self.steps()) if self.verifies(s)]
        if good:  # if nothing verifies (a failing disk), delete nothing
            kept = set(good[: self.keep])
            for old in self.steps():
                if old not in kept:
                    self.path_for(old).unlink(missing_ok=True)
                    self.path_for(old).with_suffix(".pt.sha256").unlink(missing_ok=True)
        return path

    def load_latest(self) -> tuple[int, dict[str, Any]] | None:
        """``(step, state)`` of the newest checkpoint of this run that verifies, or ``None``.

        A checkpoint whose digest is missing or wrong, or that does not parse, is skipped
        with a ``CheckpointWarning`` and the previous one is tried. With a ``run_key``, the
        checkpoints of another run are never resumed (``ForeignCheckpointWarning``).
        """
        self._claim()
        for step in reversed(self.steps()):
            path = self.path_for(step)
            digest_path = path.with_suffix(".pt.sha256")
            try:
                if not digest_path.exists():
                    raise ValueError(f"{path}: no digest file (write was interrupted)")
                payload = safe_torch_load(path, expected_sha256=digest_path.read_text().strip())
                if not isinstance(payload, dict) or payload.get("step") != step:
                    raise ValueError(f"{path}: payload does not describe step {step}")
            except (ValueError, OSError) as err:
                warnings.warn(f"skipping checkpoint: {err}; trying the previous one",
                              CheckpointWarning, stacklevel=2)
                continue
            if self.run_key is not None and payload.get("run_key") != self.run_key:
                warnings.warn(f"{path} belongs to run {payload.get('run_key')}, not to this "
                              f"run ({self.run_key}): not resuming from it",
                              ForeignCheckpointWarning, stacklevel=2)
                continue
            return step, payload["state"]
        return None
