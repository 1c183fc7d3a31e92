"""Atomic checkpoints that survive being killed, and resume from the newest good one.

A checkpoint is ``step-<N>.pt`` (``torch.save`` of plain tensors, numbers, strings, lists
and dicts, so it loads with ``weights_only=True``) plus ``step-<N>.pt.sha256``. Both are
written to a temporary file, flushed, fsynced and renamed into place; the digest goes last,
so a checkpoint without a matching digest is incomplete or corrupted and is skipped with a
warning in favour of the previous good one.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^step-(\d{9})\.pt$")


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it is corrupted, truncated or incomplete."""


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


class CheckpointManager:
    """Keeps the ``keep`` newest checkpoints of a run in ``directory``."""

    def __init__(self, directory: str | Path, keep: int = 2):
        if keep < 1:
            raise ValueError(f"keep must be >= 1 (the newest good checkpoint), got {keep}")
        self.directory = Path(directory)
        self.keep = keep

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

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write the checkpoint for ``step`` atomically, then drop the oldest extra ones."""
        path = self.path_for(step)
        digest = atomic_torch_save({"step": int(step), "state": state}, path)
        atomic_write_bytes(path.with_suffix(".pt.sha256"), digest.encode())
        for old in self.steps()[: -self.keep]:
            self.path_for(old).unlink(missing_ok=True)
            self.path_for(old).with_suffix(".pt.sha256").unlink(missing_ok=True)
        return path

    def load_latest(self) -> tuple[int, dict[str, Any]] | None:
        """``(step, state)`` of the newest checkpoint that verifies, or ``None``.

        A checkpoint whose digest is missing or wrong, or that does not parse, is skipped
        with a ``CheckpointWarning`` and the previous one is tried.
        """
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
            return step, payload["state"]
        return None
