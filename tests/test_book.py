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


#: The book's ten papers by chapter (arXiv ids of shared/papers/README.md).
PAPER_ARXIV = {"omni_sparsity": "2110.08352", "noisy_training": "2107.04677",
               "gan_slimming": "2008.11062", "prune_quant": "1910.05897", "atmc": "1902.03538",
               "ecc": "1812.01803", "energy_training": "1806.04321", "dltf": "1804.05515",
               "marginal_pg": "1806.05134", "robust_pu": "1803.06604"}


def _bib_entries() -> dict[str, str]:
    bib = (REPO_ROOT / "references.bib").read_text()
    return {m.group(1): m.group(0) for m in re.finditer(r"@\w+\{([^,]+),.*?\n\}", bib, re.S)}


def test_all_ten_papers_are_in_the_bibliography_without_duplicate_keys():
    bib = (REPO_ROOT / "references.bib").read_text()
    keys = re.findall(r"@\w+\{([^,]+),", bib)
    assert len(keys) == len(set(keys)), "duplicate bibtex keys"
    for arxiv in PAPER_ARXIV.values():
        assert arxiv in bib, f"paper arXiv:{arxiv} missing from references.bib"


def test_each_paper_chapter_cites_its_own_paper():
    from lib.reproduce import chapters_in_toc

    entries = _bib_entries()
    for chapter in chapters_in_toc():
        if chapter not in PAPER_ARXIV:
            continue
        own = [k for k, text in entries.items() if PAPER_ARXIV[chapter] in text]
        assert own, f"no bibliography entry with arXiv {PAPER_ARXIV[chapter]}"
        notebook = (REPO_ROOT / "chapters" / f"{chapter}.ipynb").read_text()
        assert any(re.search(rf"\{{cite:[pt]\}}`[^`]*{k}", notebook) for k in own), (
            f"chapter {chapter} does not cite its paper ({own})")


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
