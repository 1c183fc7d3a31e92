"""What CONTRIBUTING.md asks of every paper chapter, checked: the package and its contracts,
the notebook, the toc, intro's list, the bibliography, a scoreboard claim, tests, a
full-scale dry run."""

import importlib
import re

import pytest

from lib.core.claims import Claim
from lib.core.config import ScaleConfigs
from lib.core.paths import REPO_ROOT
from lib.reproduce import chapters_in_toc

#: Chapters that are not a paper: they make no claim for the scoreboard.
NOT_PAPERS = {"foundations", "compression_basics", "scoreboard", "head_to_head"}
PAPERS = [c for c in chapters_in_toc() if c not in NOT_PAPERS]
TOC_TEXT = (REPO_ROOT / "_toc.yml").read_text()


def test_intro_lists_exactly_the_chapters_of_the_toc():
    intro = (REPO_ROOT / "intro.md").read_text()
    listed = re.findall(r"\{doc\}`chapters/([\w-]+)`", intro)
    in_toc = re.findall(r"file:\s*chapters/([\w-]+)", TOC_TEXT)
    assert sorted(set(listed)) == sorted(set(in_toc)), (
        "intro.md must list every chapter of _toc.yml, and only those")
    assert "ten papers" not in intro or len(PAPERS) == 10


@pytest.mark.parametrize("chapter", PAPERS)
def test_paper_chapter_has_what_contributing_md_asks(chapter):
    module = importlib.import_module(f"lib.papers.{chapter}")
    assert (REPO_ROOT / "lib" / "papers" / chapter / "__init__.py").exists(), (
        f"lib/papers/{chapter} must be a package (method.py, experiment.py)")
    for part in ("method.py", "experiment.py"):
        assert (REPO_ROOT / "lib" / "papers" / chapter / part).exists(), f"{part} missing"
    assert isinstance(module.CONFIGS, ScaleConfigs)
    assert callable(module.run)
    assert isinstance(module.DATA_PARALLEL, bool)
    claims = module.CLAIMS
    assert claims and all(isinstance(c, Claim) and c.chapter == chapter for c in claims), (
        "a paper chapter makes at least one claim for the scoreboard")
    assert (REPO_ROOT / "chapters" / f"{chapter}.ipynb").exists()
    assert f"chapters/{chapter}" in TOC_TEXT
    assert list((REPO_ROOT / "tests").glob(f"test_{chapter}*.py")), "no tests of its own"
    assert (REPO_ROOT / "tests" / "fixtures" / f"full_{chapter}.py").exists(), (
        "no full-scale dry run (tests/fixtures/full_<chapter>.py)")
    notebook = (REPO_ROOT / "chapters" / f"{chapter}.ipynb").read_text()
    keys = set(re.findall(r"\{cite:[pt]\}`([^`]+)`", notebook))
    bib = (REPO_ROOT / "references.bib").read_text()
    cited = {k.strip() for group in keys for k in group.split(",")}
    assert cited, "the chapter cites its paper"
    missing = [k for k in cited if f"{{{k}," not in bib]
    assert not missing, f"cited but not in references.bib: {missing}"
    for claim in claims:
        if claim.section:
            assert f"({claim.section})=" in notebook, (
                f"claim {claim.id}: no section labelled ({claim.section})= in the chapter")
