"""Paired bootstrap intervals: SciPy as the oracle on one level, exact enumeration on two."""

import itertools

import numpy as np
import pytest
from scipy import stats

from lib.core.stats import Interval, bootstrap_interval, paired_bootstrap


def test_one_seed_equals_scipys_paired_percentile_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.normal(0.3, 1.0, 200)
    b = a - 0.2 + rng.normal(0, 0.3, 200)  # strongly paired with a
    ours = paired_bootstrap(a[None, :], b[None, :], n_boot=20000, seed=1)
    ref = stats.bootstrap((a, b), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis),
                          paired=True, method="percentile", n_resamples=20000,
                          random_state=2, vectorized=True).confidence_interval
    assert ours.estimate == pytest.approx(a.mean() - b.mean())
    assert ours.lo == pytest.approx(ref.low, abs=0.01) and ours.hi == pytest.approx(ref.high,
                                                                                    abs=0.01)
    unpaired_width = 2 * 1.96 * np.sqrt(a.var() / 200 + b.var() / 200)
    assert (ours.hi - ours.lo) < 0.5 * unpaired_width, "pairing must shrink the interval"


def test_two_level_resampling_matches_exact_enumeration():
    """2 seeds x 3 items: every (seed draw, item draw) pair enumerated exactly."""
    a = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    b = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    words = np.array([3.0, 1.0, 2.0])
    exact = []
    for s in itertools.product(range(2), repeat=2):
        for i in itertools.product(range(3), repeat=3):
            idx = np.ix_(s, i)
            d = np.broadcast_to(words, a.shape)[idx]
            exact.append(a[idx].sum() / d.sum() - b[idx].sum() / d.sum())
    lo, hi = np.quantile(exact, [0.025, 0.975])
    ours = paired_bootstrap(a, b, denominators=words, n_boot=200000, seed=0)
    assert ours.estimate == pytest.approx((a.sum() - b.sum()) / (2 * words.sum()))
    assert ours.lo == pytest.approx(lo, abs=0.03) and ours.hi == pytest.approx(hi, abs=0.03)
    assert ours.n_seeds == 2 and ours.n_items == 3


def test_relative_difference_and_single_method_interval():
    a = np.full((3, 50), 0.9)
    b = np.full((3, 50), 1.0)
    rel = paired_bootstrap(a, b, relative=True)
    assert rel.estimate == pytest.approx(-0.1) and rel.lo == pytest.approx(-0.1)
    one = bootstrap_interval(np.arange(10.0)[None, :], n_boot=5000)
    assert one.estimate == pytest.approx(4.5) and one.lo < 4.5 < one.hi


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="pair up"):
        paired_bootstrap(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        paired_bootstrap(np.array([[np.nan]]), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="n_boot"):
        paired_bootstrap(np.zeros((1, 2)), np.zeros((1, 2)), n_boot=10)
    with pytest.raises(ValueError, match="lower bound"):
        Interval(0.0, 1.0, -1.0)


def test_interval_round_trips_through_record_metrics():
    iv = Interval(0.1, -0.2, 0.3, n_seeds=3, n_items=100)
    m = iv.as_metrics("gain")
    assert set(m) == {f"gain_{k}" for k in ("estimate", "lo", "hi", "level", "n_seeds",
                                              "n_items")}
    assert Interval.from_metrics(m, "gain") == iv and iv.half_width == pytest.approx(0.25)
