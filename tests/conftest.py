"""Test-session setup: a private artifact cache and results folder, progress bars off."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_book_dirs(tmp_path_factory):
    """Tests never read or pollute the user's cache: they build what they need, cold.

    Set ``BOOK_TEST_CACHE_DIR`` to reuse a cache across test sessions (local iteration).
    """
    cache = os.environ.get("BOOK_TEST_CACHE_DIR") or str(tmp_path_factory.mktemp("cache"))
    saved = {k: os.environ.get(k) for k in ("BOOK_CACHE_DIR", "BOOK_RESULTS_DIR", "BOOK_PROGRESS")}
    os.environ["BOOK_CACHE_DIR"] = cache
    os.environ["BOOK_RESULTS_DIR"] = str(tmp_path_factory.mktemp("results"))
    os.environ["BOOK_PROGRESS"] = "0"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
