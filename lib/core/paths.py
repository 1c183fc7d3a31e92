"""Where the book keeps things: repository root, results, artifact cache, data sets.

The artifact cache and the data sets live apart: removing the cache to start cold never
deletes downloaded data.

==================  ======================  =========================================
what                environment variable    default
==================  ======================  =========================================
artifact cache      ``BOOK_CACHE_DIR``      ``~/.cache/effml-book`` (user cache dir)
full-scale data     ``BOOK_DATA_DIR``       ``~/.local/share/effml-book`` (user data dir)
metrics records     ``BOOK_RESULTS_DIR``    ``<repo>/results``
==================  ======================  =========================================
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

#: Root of the repository (the folder holding ``_toc.yml``); lib is installed editable.
REPO_ROOT = Path(__file__).resolve().parents[2]

CACHE_ENV = "BOOK_CACHE_DIR"
RESULTS_ENV = "BOOK_RESULTS_DIR"
DATA_ENV = "BOOK_DATA_DIR"


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


def data_dir(root: str | Path | None = None) -> Path:
    """The one data root of every full-scale loader and every ``data_scripts/`` command:
    ``root`` if given, else ``$BOOK_DATA_DIR``, else the user's data dir
    (``~/.local/share/effml-book``). Not created here: a loader only reads it."""
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("effml-book"))
