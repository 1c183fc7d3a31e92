"""Every chapter in _toc.yml runs at smoke scale through the runner, offline, and records.

Each runs as ``python -m lib.reproduce <chapter> --scale smoke --no-network``: in a fresh
network namespace (loopback only) where the platform allows it, so the kernel and every
process it starts (data workers, synthesis, DDP ranks) are offline, and with the in-kernel
guard besides.
"""

import subprocess
import sys

import pytest

from lib.core.record import read_record
from lib.reproduce import chapters_in_toc

CHAPTERS = chapters_in_toc()


@pytest.mark.chapter
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_at_smoke_scale_offline_and_writes_its_record(chapter, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lib.reproduce", chapter, "--scale", "smoke",
                           "--no-network", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"{chapter} failed:\n{proc.stderr[-4000:]}"
    record = read_record(tmp_path / f"{chapter}-smoke.json")
    assert record["chapter"] == chapter and record["scale"] == "smoke"
    assert record["metrics"], "a chapter must record metrics"
    numbers = [v for v in record["metrics"].values()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert numbers, "a chapter's metrics must hold at least one number"
    assert record["wall_time_s"] > 0 and record["notebook_wall_time_s"] > 0
    assert (tmp_path / f"{chapter}-smoke.ipynb").exists()
