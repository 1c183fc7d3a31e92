"""Every chapter in _toc.yml runs at smoke scale through papermill, offline, and records."""

import pytest

from lib.reproduce import chapters_in_toc, run_chapter

CHAPTERS = chapters_in_toc()


@pytest.mark.chapter
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_at_smoke_scale_offline_and_writes_its_record(chapter, tmp_path):
    record = run_chapter(chapter, "smoke", out_dir=tmp_path, block_network=True)
    assert record["chapter"] == chapter and record["scale"] == "smoke"
    assert record["metrics"], "a chapter must record metrics"
    numbers = [v for v in record["metrics"].values()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert numbers, "a chapter's metrics must hold at least one number"
    assert record["wall_time_s"] > 0 and record["notebook_wall_time_s"] > 0
    assert (tmp_path / f"{chapter}-smoke.ipynb").exists()
