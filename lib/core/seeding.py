"""Seeding that makes CPU runs repeatable bit for bit."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, *, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch; return a fresh ``torch.Generator`` seeded with ``seed``.

    With ``deterministic`` and CUDA present, torch is asked for deterministic kernels
    (warn-only, so an op without a deterministic implementation still runs) and cuDNN
    autotuning is off. CPU kernels are deterministic already: two CPU runs with the same
    seed and thread count give identical numbers (tests/test_core_train.py checks it), and
    the switch is skipped there because it imports ``torch._inductor`` (seconds per process).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic and torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return make_generator(seed)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def derive_seed(seed: int, *names: object) -> int:
    """A stable sub-seed for a named purpose (e.g. ``derive_seed(0, "data", 3)``)."""
    import hashlib

    text = "/".join([str(seed), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "little")
