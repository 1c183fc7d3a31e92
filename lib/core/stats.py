"""Paired intervals and verdicts, as ``shared/EXPERIMENTS.md`` asks of every chapter.

A chapter compares a method with a baseline on the same seeds and the same test items.
``paired_bootstrap`` resamples both levels, seeds and items, with replacement and the *same*
draws for both methods (that is what pairs them), and gives a 95% percentile interval of
the difference of a statistic (a mean, or a ratio of sums such as a WER = errors / words).
The verdict functions turn an interval and the paper's effect into one of three words:

* **reproduced**: the interval excludes zero, in the paper's direction;
* **not reproduced**: the interval excludes the paper's effect size;
* **inconclusive at this scale**: the interval holds both.

Written here rather than taken from ``scipy.stats.bootstrap``: SciPy resamples one level
(items or seeds), not seeds and items nested with shared indices across two methods.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive at this scale"
NOT_MEASURED = "not measured"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_MEASURED)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided interval at ``level``."""

    estimate: float
    lo: float
    hi: float
    level: float = 0.95
    n_seeds: int = 0
    n_items: int = 0

    def __post_init__(self):
        if not self.lo <= self.hi:
            raise ValueError(f"interval lower bound {self.lo} above its upper bound {self.hi}")

    @property
    def half_width(self) -> float:
        """Half the interval's width: about the smallest effect this experiment resolves."""
        return (self.hi - self.lo) / 2

    def excludes(self, value: float) -> bool:
        return value < self.lo or value > self.hi

    def as_metrics(self, prefix: str) -> dict[str, float]:
        """``{prefix}_estimate``, ``_lo``, ``_hi``, ``_level``, ``_n_seeds``, ``_n_items``:
        the keys a ``Claim.interval`` reads back from a record."""
        return {f"{prefix}_{k}": v for k, v in asdict(self).items()}

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any], prefix: str) -> Interval:
        return cls(**{k: metrics[f"{prefix}_{k}"] for k in ("estimate", "lo", "hi")},
                   **{k: metrics.get(f"{prefix}_{k}", d) for k, d in
                      (("level", 0.95), ("n_seeds", 0), ("n_items", 0))})

    def __str__(self) -> str:
        return f"{self.estimate:+.4g} [{self.lo:+.4g}, {self.hi:+.4g}]"


def _as_2d(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]  # one value per seed (no item level)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} must have shape (seeds, items) or (seeds,), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or inf")
    return a


def _statistic(values: np.ndarray, denom: np.ndarray | None) -> np.ndarray:
    """Mean (or ratio of sums) over the last two axes of bootstrap-indexed arrays."""
    if denom is None:
        return values.mean(axis=(-2, -1))
    return values.sum(axis=(-2, -1)) / denom.sum(axis=(-2, -1))


def paired_bootstrap(a: Any, b: Any, *, denominators: Any = None, relative: bool = False,
                     n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Interval of ``stat(a) - stat(b)`` (or ``(stat(a) - stat(b)) / stat(b)``), paired.

    ``a`` and ``b`` hold per-item values of the two methods, shape ``(seeds, items)``: row
    ``s`` is training seed ``s`` of each method, column ``i`` test item ``i`` (e.g. 1/0 for a
    correct prediction, or a count of word errors). ``stat`` is the mean, or with
    ``denominators`` (same shape, or ``(items,)``: e.g. words per utterance) the ratio of
    sums. Each replicate draws seeds, then items, with replacement, the same draws for both.
    """
    a, b = _as_2d(a, "a"), _as_2d(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must pair up: shapes {a.shape} and {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 100:
        raise ValueError(f"n_boot must be >= 100 for a percentile interval, got {n_boot}")
    d = None
    if denominators is not None:
        d = np.asarray(denominators, dtype=np.float64)
        d = np.broadcast_to(d if d.ndim == 2 else d[None, :], a.shape)
        if np.any(d < 0) or d.sum() <= 0:
            raise ValueError("denominators must be non-negative with a positive sum")
    n_seeds, n_items = a.shape

    def diff(sa, sb):
        return (sa - sb) / sb if relative else sa - sb

    estimate = float(diff(_statistic(a, d), _statistic(b, d)))
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    chunk = max(1, min(n_boot, 2_000_000 // max(1, n_seeds * n_items)))
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        s = rng.integers(0, n_seeds, size=(m, n_seeds))[:, :, None]
        i = rng.integers(0, n_items, size=(m, 1, n_items))
        da = None if d is None else d[s, i]
        out[start:start + m] = diff(_statistic(a[s, i], da), _statistic(b[s, i], da))
    tail = (1 - level) / 2
    lo, hi = np.quantile(out, [tail, 1 - tail])
    return Interval(estimate, float(lo), float(hi), level, n_seeds, n_items)


def bootstrap_interval(x: Any, *, denominators: Any = None, n_boot: int = 2000,
                       level: float = 0.95, seed: int = 0) -> Interval:
    """Interval of one method's statistic (mean or ratio of sums) over seeds and items."""
    x = _as_2d(x, "x")
    zero = np.zeros_like(x)
    if denominators is None:
        return paired_bootstrap(x, zero, n_boot=n_boot, level=level, seed=seed)
    # stat(x) - stat(0) = stat(x) for a ratio of sums too
    return paired_bootstrap(x, zero, denominators=denominators, n_boot=n_boot, level=level,
                            seed=seed)


def verdict(interval: Interval, paper_effect: float) -> str:
    """The verdict on a directional claim whose effect the paper reports as ``paper_effect``
    (signed, in the interval's units: e.g. ``-0.066`` for a 6.6% relative WER drop)."""
    if paper_effect == 0:
        raise ValueError("a claim of no difference is judged by noninferiority_verdict")
    if interval.excludes(0.0) and np.sign(interval.estimate) == np.sign(paper_effect):
        return REPRODUCED
    if interval.excludes(paper_effect):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def noninferiority_verdict(interval: Interval, margin: float, *,
                           higher_is_better: bool = True) -> str:
    """The verdict on "no loss": the method is within ``margin`` of the baseline.

    Reproduced when the whole interval lies above ``-margin`` (for a metric where higher is
    better), not reproduced when it lies wholly below, else inconclusive.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    lo, hi = (interval.lo, interval.hi) if higher_is_better else (-interval.hi, -interval.lo)
    if lo > -margin:
        return REPRODUCED
    if hi < -margin:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def range_verdict(interval: Interval, target: tuple[float, float]) -> str:
    """The verdict on "the value is about X": reproduced when the interval lies inside
    ``target``, not reproduced when it misses it entirely, else inconclusive."""
    t_lo, t_hi = target
    if not t_lo <= t_hi:
        raise ValueError(f"target range {target} is empty")
    if t_lo <= interval.lo and interval.hi <= t_hi:
        return REPRODUCED
    if interval.hi < t_lo or interval.lo > t_hi:
        return NOT_REPRODUCED
    return INCONCLUSIVE
