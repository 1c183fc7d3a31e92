"""Progress bars (``tqdm.auto``) that can be silenced."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

PROGRESS_ENV = "BOOK_PROGRESS"


def progress_enabled(enabled: bool | None = None) -> bool:
    """Explicit ``enabled`` wins; else off on data-parallel ranks other than 0; else
    ``$BOOK_PROGRESS`` ("0" silences); else on."""
    if enabled is not None:
        return bool(enabled)
    if os.environ.get("RANK", "0") not in ("", "0"):
        return False
    if os.environ.get("TQDM_DISABLE"):
        return False
    return os.environ.get(PROGRESS_ENV, "1") not in ("0", "false", "False", "")


def progress(iterable: Iterable | None = None, *, desc: str = "", total: int | None = None,
             enabled: bool | None = None, **kwargs: Any) -> tqdm:
    """A ``tqdm.auto`` bar over ``iterable``; silent when disabled (see ``progress_enabled``)."""
    return tqdm(iterable, desc=desc, total=total, disable=not progress_enabled(enabled),
                dynamic_ncols=True, **kwargs)
