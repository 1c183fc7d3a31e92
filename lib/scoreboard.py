"""The scoreboard: each paper's claims beside the latest metrics record of its chapter.

The claims live with their papers (``CLAIMS`` of ``lib.papers.<chapter>``, a list of
``lib.core.claims.Claim``); this module collects them for the chapters of ``_toc.yml`` and
judges each against every record of its chapter at a scale: one record per chapter, scale
and setup (``results/<chapter>-<scale>[-<setup>].json``). A claim whose metrics a record
lacks reads **not measured**; a dry run (a record written under a step limit) is never
judged.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from lib.core import paths
from lib.core.claims import Claim
from lib.core.record import read_record, records_of
from lib.core.stats import NOT_MEASURED


def chapter_claims(chapter: str) -> list[Claim]:
    """``CLAIMS`` of the chapter's paper module, or ``[]`` when it has none."""
    try:
        module = importlib.import_module(f"lib.papers.{chapter}")
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith(f"lib.papers.{chapter}"):
            return []
        raise
    claims = list(getattr(module, "CLAIMS", []))
    for claim in claims:
        if claim.chapter != chapter:
            raise ValueError(f"lib.papers.{chapter} lists a claim of chapter {claim.chapter!r}")
    ids = [c.id for c in claims]
    if len(ids) != len(set(ids)):
        raise ValueError(f"lib.papers.{chapter}: duplicate claim ids {ids}")
    return claims


def all_claims(chapters: list[str] | None = None) -> list[Claim]:
    """The claims of every chapter in the book (or of ``chapters``), in toc order."""
    if chapters is None:
        from lib.reproduce import chapters_in_toc

        chapters = chapters_in_toc()
    return [claim for chapter in chapters for claim in chapter_claims(chapter)]


def _row(claim: Claim, record: dict[str, Any] | None, setup: str) -> dict[str, Any]:
    row = {"chapter": claim.chapter, "id": claim.id, "section": claim.section,
           "claim": claim.claim, "paper": claim.paper, "setup": setup,
           "ours": "not run at this scale yet", "verdict": NOT_MEASURED, "record": ""}
    if record is None:
        return row
    row["record"] = f"{record['git_commit'][:10]} {record.get('created', '')[:10]}"
    if record.get("max_steps"):
        row["ours"] = f"dry run (step limit {record['max_steps']}): not judged"
        return row
    try:
        judgement = claim.evaluate(record["metrics"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
        row["ours"] = f"record unreadable for this claim ({type(err).__name__}: {err})"
        return row
    row["ours"], row["verdict"] = judgement.ours, judgement.verdict
    return row


def scoreboard_rows(scale: str, results: str | Path | None = None,
                    claims: list[Claim] | None = None) -> list[dict[str, Any]]:
    """One row per claim and record (setup) at ``scale``: the paper's number, ours, the
    verdict (reproduced / not reproduced / inconclusive at this scale / not measured)."""
    results = Path(results) if results is not None else paths.results_dir()
    claims = all_claims() if claims is None else claims
    rows = []
    for claim in claims:
        found = records_of(claim.chapter, scale, results)
        if not found:
            rows.append(_row(claim, None, ""))
        for setup, path in found:
            rows.append(_row(claim, read_record(path), setup))
    return rows


VERDICT_COLORS = {"reproduced": "#d8f0d8", "not reproduced": "#f6d5d5",
                  "inconclusive at this scale": "#fbefc9", "not measured": "#e8e8e8"}


def verdict_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many rows carry each verdict (all four keys, zeros included)."""
    from lib.core.stats import VERDICTS

    return {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}


def scoreboard_table(rows: list[dict[str, Any]]):
    """The rows as one styled table: a row per claim (and setup), the verdict coloured, the
    chapter linked to the section that measures the claim."""
    import html

    import pandas as pd

    def link(r: dict[str, Any]) -> str:
        anchor = f"#{r['section']}" if r["section"] else ""
        label = r["chapter"] + (f" ({r['setup']})" if r["setup"] else "")
        return f'<a href="{r["chapter"]}.html{anchor}">{html.escape(label)}</a>'

    frame = pd.DataFrame([{"chapter": link(r), "claim": r["claim"], "paper": r["paper"],
                           "ours": r["ours"], "verdict": r["verdict"]} for r in rows])
    return (frame.style.hide(axis="index")
            .map(lambda v: f"background-color: {VERDICT_COLORS.get(v, 'white')}",
                 subset=["verdict"])
            .set_table_attributes('class="dataframe book-scoreboard"'))
