"""The step limit of a dry run: ``BOOK_MAX_STEPS`` caps every training loop of the library.

A full-scale chapter run end to end on fixture data (``python -m lib.reproduce <chapter>
--scale full --max-steps 3``) must take seconds, not GPU-days, yet go through the real
models, loaders and launcher. The runner exports ``BOOK_MAX_STEPS`` to the chapter's kernel
(and so to every process it starts: data-loading workers, DDP ranks); ``train_loop`` and the
library's other iterative solvers cap their step counts with ``limit_steps``. The limit is
part of every artifact and run key, so a capped run never serves its models or checkpoints
to a real one, and it is written into the chapter's record.
"""

from __future__ import annotations

import os

STEP_LIMIT_ENV = "BOOK_MAX_STEPS"


def step_limit() -> int | None:
    """The dry-run step limit, or ``None`` for a real run."""
    raw = os.environ.get(STEP_LIMIT_ENV, "").strip()
    if not raw or raw == "0":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{STEP_LIMIT_ENV}={raw!r}: expected a positive integer (0 or unset "
                         f"for no limit)") from None
    if value < 0:
        raise ValueError(f"{STEP_LIMIT_ENV}={value}: expected a positive integer")
    return value


def limit_steps(steps: int) -> int:
    """``steps``, capped at the dry-run limit when one is set."""
    limit = step_limit()
    return int(steps) if limit is None else min(int(steps), limit)
