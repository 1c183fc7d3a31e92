"""The scoreboard: verdicts from intervals, "not measured" without metrics, one record per
chapter, scale and setup, dry runs never judged; every claim of the book is exercised."""

import pytest

from lib import scoreboard
from lib.core.claims import Claim
from lib.core.record import write_record
from lib.core.stats import (
    INCONCLUSIVE,
    NOT_MEASURED,
    NOT_REPRODUCED,
    REPRODUCED,
    VERDICTS,
    Interval,
)
from lib.reproduce import chapters_in_toc

CLAIMS = scoreboard.all_claims()


def test_every_claim_names_a_chapter_of_the_book_and_reads_metrics():
    assert CLAIMS, "the book's papers make claims"
    assert {c.chapter for c in CLAIMS} <= set(chapters_in_toc())
    keys = [(c.chapter, c.id) for c in CLAIMS]
    assert len(keys) == len(set(keys))
    assert all(c.metrics for c in CLAIMS)


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: f"{c.chapter}/{c.id}")
def test_a_record_without_the_claims_metrics_reads_not_measured(claim, tmp_path):
    write_record(claim.chapter, "smoke", 0, {"x": 1}, {"unrelated": 1.0}, 1.0, out_dir=tmp_path)
    (row,) = scoreboard.scoreboard_rows("smoke", tmp_path, [claim])
    assert row["verdict"] == NOT_MEASURED and "lacks" in row["ours"]
    (row,) = scoreboard.scoreboard_rows("tutorial", tmp_path, [claim])
    assert row["verdict"] == NOT_MEASURED and row["ours"] == "not run at this scale yet"


def _fake_metrics(claim: Claim, estimate: float, lo: float, hi: float) -> dict:
    prefix = claim.metrics[0].removesuffix("_estimate")
    return Interval(estimate, lo, hi, n_seeds=3).as_metrics(prefix)


def _gate_choices(claim: Claim) -> list[dict]:
    """Values for the metrics a claim reads beyond its interval (a gate: a positive control,
    whether the mechanism acted): each such interval below, around or above zero, each
    other number 0 or 1; every combination."""
    import itertools

    main = claim.metrics[0].removesuffix("_estimate")
    extra = [m for m in claim.metrics if not m.startswith(main + "_")]
    groups = sorted({m.removesuffix("_estimate") for m in extra if m.endswith("_estimate")})
    scalars = [m for m in extra if not any(m.startswith(g + "_") for g in groups)]
    options = [[Interval(c, c - 0.1, c + 0.1, n_seeds=3).as_metrics(g) for c in (-1, 0, 1)]
               for g in groups] + [[{m: v} for v in (0.0, 1.0)] for m in scalars]
    return [{k: v for part in combo for k, v in part.items()}
            for combo in itertools.product(*options)] or [{}]


def _record_for(claim: Claim, wanted: str) -> dict:
    """A record giving ``wanted`` for this claim, found by trying a grid of intervals (so
    each claim's own direction, effect size, margin or range is exercised) and, for a gated
    claim, every gate value."""
    grid = [x / 100 for x in range(-300, 301, 5)]
    for gate in _gate_choices(claim):
        for centre in grid:
            for half in (0.001, 0.01, 0.05, 0.2, 1.0):
                m = {**gate, **_fake_metrics(claim, centre, centre - half, centre + half)}
                if claim.evaluate(m).verdict == wanted:
                    return m
    raise AssertionError(f"no record gives {wanted!r} for {claim.chapter}/{claim.id}")


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: f"{c.chapter}/{c.id}")
@pytest.mark.parametrize("wanted", [REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE])
def test_each_claim_reaches_each_verdict_from_a_fake_record(claim, wanted, tmp_path):
    if not claim.metrics[0].endswith("_estimate"):
        pytest.skip("not an interval claim: its own chapter's tests feed it records")
    write_record(claim.chapter, "smoke", 0, {"x": 1}, _record_for(claim, wanted), 1.0,
                 out_dir=tmp_path)
    (row,) = scoreboard.scoreboard_rows("smoke", tmp_path, [claim])
    assert row["verdict"] == wanted and row["ours"]


def test_a_gated_claim_is_inconclusive_when_its_gate_fails():
    base = Claim.interval("x", "g", "claim", paper="+1", prefix="d", paper_effect=0.01)
    gated = base.gated(("acted",), lambda m: m["acted"] > 0, lambda m: "the mechanism idled")
    m = Interval(0.05, 0.03, 0.07).as_metrics("d")
    assert base.evaluate(m).verdict == REPRODUCED
    assert gated.evaluate({**m, "acted": 1.0}).verdict == REPRODUCED
    judged = gated.evaluate({**m, "acted": 0.0})
    assert judged.verdict == INCONCLUSIVE and "the mechanism idled" in judged.ours
    assert "(reproduced)" in judged.ours  # the interval's own verdict stays in the text
    assert gated.evaluate(m).verdict == NOT_MEASURED  # the gate's metric is absent


def test_verdict_rules_of_experiments_md():
    c = Claim.interval("x", "c", "claim", paper="-5%", prefix="d", paper_effect=-0.05)

    def judge(lo, hi):
        return c.evaluate(Interval((lo + hi) / 2, lo, hi).as_metrics("d")).verdict

    assert judge(-0.08, -0.01) == REPRODUCED            # excludes 0, paper's direction
    assert judge(-0.02, 0.03) == NOT_REPRODUCED         # excludes -5%
    assert judge(0.01, 0.04) == NOT_REPRODUCED          # the opposite direction
    assert judge(-0.07, 0.01) == INCONCLUSIVE           # holds both 0 and -5%
    n = Claim.interval("x", "n", "no loss", paper="0", prefix="d", margin=0.01)
    assert n.evaluate(Interval(0, -0.005, 0.004).as_metrics("d")).verdict == REPRODUCED
    assert n.evaluate(Interval(-0.05, -0.06, -0.02).as_metrics("d")).verdict == NOT_REPRODUCED
    assert n.evaluate(Interval(-0.01, -0.03, 0.01).as_metrics("d")).verdict == INCONCLUSIVE
    r = Claim.interval("x", "r", "about 1/2", paper="1/2", prefix="d", target=(0.4, 0.6))
    assert r.evaluate(Interval(0.5, 0.45, 0.55).as_metrics("d")).verdict == REPRODUCED
    assert r.evaluate(Interval(0.8, 0.7, 0.9).as_metrics("d")).verdict == NOT_REPRODUCED
    assert r.evaluate(Interval(0.6, 0.5, 0.7).as_metrics("d")).verdict == INCONCLUSIVE
    with pytest.raises(ValueError, match="exactly one"):
        Claim.interval("x", "b", "c", paper="p", prefix="d", paper_effect=1.0, margin=1.0)


def test_one_record_per_setup_and_dry_runs_are_not_judged(tmp_path, monkeypatch):
    c = Claim.interval("prune_quant", "c", "claim", paper="+1", prefix="d", paper_effect=1.0)
    good = Interval(2.0, 1.5, 2.5).as_metrics("d")
    write_record("prune_quant", "full", 0, {"x": 1}, good, 1.0, out_dir=tmp_path)
    write_record("prune_quant", "full", 0, {"x": 1}, Interval(-2, -2.5, -1.5).as_metrics("d"),
                 1.0, out_dir=tmp_path, setup="lenet5-mnist")
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "prune_quant-full-lenet5-mnist.json", "prune_quant-full.json"]
    rows = scoreboard.scoreboard_rows("full", tmp_path, [c])
    assert [(r["setup"], r["verdict"]) for r in rows] == [
        ("", REPRODUCED), ("lenet5-mnist", NOT_REPRODUCED)]
    monkeypatch.setenv("BOOK_MAX_STEPS", "2")
    write_record("prune_quant", "smoke", 0, {"x": 1}, good, 1.0, out_dir=tmp_path)
    (row,) = scoreboard.scoreboard_rows("smoke", tmp_path, [c])
    assert row["verdict"] == NOT_MEASURED and "dry run" in row["ours"]


def test_verdicts_are_the_four_words():
    assert VERDICTS == (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_MEASURED)


def test_verdict_rows_judge_each_claim_from_the_metrics():
    from lib.core.claims import verdict_rows

    c = Claim.interval("x", "c", "claim", paper="+1", prefix="d", paper_effect=0.01)
    (row,) = verdict_rows([c], Interval(0.05, 0.03, 0.07).as_metrics("d"))
    assert row["id"] == "c" and row["paper"] == "+1" and row["verdict"] == REPRODUCED
    assert "+0.05" in row["measured"]
    assert verdict_rows([c], {})[0]["verdict"] == NOT_MEASURED
