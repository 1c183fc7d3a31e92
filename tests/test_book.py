"""The book's configuration: never stale, failing chapters fail the build, all papers cited."""

import re

import yaml

from lib import book
from lib.core.paths import REPO_ROOT


def test_config_always_executes_and_fails_on_errors():
    cfg = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    execute = cfg["execute"]
    # the execution cache keys on code cells only: a lib/ change would show stale results
    assert execute["execute_notebooks"] == "force"
    assert execute["raise_on_error"] is True and execute["allow_errors"] is False
    assert 0 < execute["timeout"] <= 3600
    assert cfg["bibtex_bibfiles"] == ["references.bib"]
    assert cfg["repository"]["url"].startswith("https://")


def test_all_ten_papers_are_in_the_bibliography():
    bib = (REPO_ROOT / "references.bib").read_text()
    for arxiv in ["2110.08352", "2107.04677", "2008.11062", "1910.05897", "1902.03538",
                  "1812.01803", "1806.04321", "1804.05515", "1806.05134", "1803.06604"]:
        assert arxiv in bib, f"paper arXiv:{arxiv} missing from references.bib"
    keys = re.findall(r"@\w+\{([^,]+),", bib)
    assert len(keys) == len(set(keys)), "duplicate bibtex keys"


def test_staged_book_renders_executed_notebooks_without_re_executing(tmp_path):
    nb = tmp_path / "foundations.ipynb"
    nb.write_text((REPO_ROOT / "chapters" / "foundations.ipynb").read_text())
    book.stage(tmp_path / "src", {"foundations": nb}, {"foundations"})
    staged = yaml.safe_load((tmp_path / "src" / "_config.yml").read_text())
    assert staged["execute"]["execute_notebooks"] == "off"
    toc = yaml.safe_load((tmp_path / "src" / "_toc.yml").read_text())
    files = re.findall(r"'file': '([^']+)'", str(toc))
    assert "chapters/foundations" in files
    assert all(not (REPO_ROOT / f"{f}.ipynb").exists() or f.endswith("foundations")
               for f in files), "--only must drop the other executable chapters"
    assert (tmp_path / "src" / "lib").resolve() == REPO_ROOT / "lib"


def test_only_drops_parts_left_without_chapters():
    from lib.book import _prune_toc
    from lib.reproduce import chapters_in_toc

    toc = {"format": "jb-book", "root": "intro", "parts": [
        {"caption": "A", "chapters": [{"file": f"chapters/{c}"} for c in chapters_in_toc()]},
        {"caption": "B", "chapters": [{"file": f"chapters/{chapters_in_toc()[-1]}"}]}]}
    keep = {chapters_in_toc()[0]}
    pruned = _prune_toc(toc, keep)
    assert [p["caption"] for p in pruned["parts"]] == ["A"], "an empty part breaks the build"
