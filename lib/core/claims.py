"""A paper's claims, as the scoreboard judges them from a chapter's metrics record.

Each paper module (or package) exposes ``CLAIMS``: a list of ``Claim``. A claim names the
record metrics it reads; when any is absent the scoreboard says **not measured** (never a
verdict from nothing). Its ``judge`` turns the metrics into what we measured (text) and a
verdict of ``lib.core.stats`` (reproduced / not reproduced / inconclusive at this scale).

Most claims compare a method with a baseline through a paired interval the chapter records
with ``Interval.as_metrics(prefix)``; ``Claim.interval`` builds such a claim in one line::

    Claim.interval("omni_sparsity", "gain-90", "Supernet sub-networks beat individually
                   pruned ones at 90% sparsity", paper="2-6.6% lower relative WER",
                   prefix="rel_wer_supernet_vs_pruned_90", paper_effect=-0.02,
                   unit="relative WER change", percent=True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .stats import (
    INCONCLUSIVE,
    NOT_MEASURED,
    VERDICTS,
    Interval,
    noninferiority_verdict,
    range_verdict,
    verdict,
)

Metrics = dict[str, Any]


@dataclass(frozen=True)
class Judgement:
    """What we measured, in words, and the verdict on the paper's claim."""

    ours: str
    verdict: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r}; valid verdicts are {VERDICTS}")


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, judged from its chapter's record."""

    chapter: str
    id: str                                 # unique within the chapter (a slug)
    claim: str                              # the comparison, in words
    paper: str                              # what the paper reports
    metrics: tuple[str, ...]                # record metrics the judge reads
    judge: Callable[[Metrics], Judgement] = field(compare=False)
    section: str = ""                       # the chapter's label of the section measuring it

    def __post_init__(self):
        if not self.metrics:
            raise ValueError(f"claim {self.chapter}/{self.id} must name the metrics it reads")
        if not self.id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"claim id {self.id!r}: use letters, digits, '-' and '_'")

    def evaluate(self, metrics: Metrics) -> Judgement:
        """The judgement, or "not measured" when the record lacks a metric of the claim."""
        missing = [m for m in self.metrics if metrics.get(m) is None]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            return Judgement(f"not measured (the record lacks {missing[0]}{more})",
                             NOT_MEASURED)
        return self.judge(metrics)

    def gated(self, needs: tuple[str, ...], holds: Callable[[Metrics], bool],
              why_not: Callable[[Metrics], str]) -> Claim:
        """This claim, judged "inconclusive at this scale" when ``holds(metrics)`` is false:
        a precondition of the experiment (a positive control passed, the mechanism acted)
        that the interval alone does not show. ``needs``: the record metrics ``holds``
        reads (absent, the claim is "not measured"); ``why_not(metrics)`` says in words what
        failed, and the interval's own verdict is kept in the text."""
        inner = self.judge

        def judge(m: Metrics) -> Judgement:
            j = inner(m)
            if holds(m):
                return j
            return Judgement(f"{j.ours}; {why_not(m)}, so the interval's own verdict "
                             f"({j.verdict}) cannot speak", INCONCLUSIVE)

        return replace(self, metrics=self.metrics + tuple(needs), judge=judge)

    @classmethod
    def interval(cls, chapter: str, id: str, claim: str, *, paper: str, prefix: str,
                 paper_effect: float | None = None, margin: float | None = None,
                 target: tuple[float, float] | None = None, unit: str = "",
                 percent: bool = False, higher_is_better: bool = True,
                 section: str = "") -> Claim:
        """A claim judged from the interval recorded under ``prefix``.

        Exactly one of: ``paper_effect`` (a directional claim: ``verdict``), ``margin`` (a
        "no loss" claim: ``noninferiority_verdict``), ``target`` (a "the value is about X"
        claim: ``range_verdict``).
        """
        if sum(x is not None for x in (paper_effect, margin, target)) != 1:
            raise ValueError("give exactly one of paper_effect, margin, target")

        def fmt(x: float) -> str:
            return f"{100 * x:+.1f}%" if percent else f"{x:+.3g}"

        def judge(m: Metrics) -> Judgement:
            iv = Interval.from_metrics(m, prefix)
            if paper_effect is not None:
                v, against = verdict(iv, paper_effect), f"paper {fmt(paper_effect)}"
            elif margin is not None:
                v = noninferiority_verdict(iv, margin, higher_is_better=higher_is_better)
                against = f"margin {fmt(-margin if higher_is_better else margin)}"
            else:
                v, against = range_verdict(iv, target), f"paper range {target[0]:g}-{target[1]:g}"
            seeds = f", {iv.n_seeds} seeds" if iv.n_seeds else ""
            text = (f"{unit + ' ' if unit else ''}{fmt(iv.estimate)} "
                    f"[{fmt(iv.lo)}, {fmt(iv.hi)}] ({100 * iv.level:.0f}% interval{seeds}; "
                    f"{against})")
            return Judgement(text, v)

        metrics = tuple(f"{prefix}_{k}" for k in ("estimate", "lo", "hi"))
        return cls(chapter, id, claim, paper, metrics, judge, section)


def verdict_rows(claims: list[Claim], metrics: Metrics) -> list[dict[str, str]]:
    """Each claim judged from ``metrics``: its id, the claim, the paper's figure, what we
    measured and the verdict (a chapter's verdict table)."""
    rows = []
    for claim in claims:
        judgement = claim.evaluate(metrics)
        rows.append({"id": claim.id, "claim": claim.claim, "paper": claim.paper,
                     "measured": judgement.ours, "verdict": judgement.verdict})
    return rows
