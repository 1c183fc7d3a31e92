"""Where the book keeps things: repository root, results, artifact cache."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

#: Root of the repository (the folder holding ``_toc.yml``); lib is installed editable.
REPO_ROOT = Path(__file__).resolve().parents[2]

CACHE_ENV = "BOOK_CACHE_DIR"
RESULTS_ENV = "BOOK_RESULTS_DIR"


def cache_dir() -> Path:
    """The artifact cache: ``$BOOK_CACHE_DIR`` or the user's cache dir (``~/.cache/effml-book``)."""
    env = os.environ.get(CACHE_ENV)
    path = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("effml-book"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """Where metrics records go: ``$BOOK_RESULTS_DIR`` or ``<repo>/results``."""
    env = os.environ.get(RESULTS_ENV)
    path = Path(env).expanduser() if env else REPO_ROOT / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path
