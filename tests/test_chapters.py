"""Every chapter in _toc.yml runs at smoke scale through the runner, offline, and records;
run again from an empty artifact cache with the same seed, it records the same numbers.

Each runs as ``python -m lib.reproduce <chapter> --scale smoke --no-network``: in a fresh
network namespace (loopback only) where the platform allows it, so the kernel and every
process it starts (data workers, synthesis, DDP ranks) are offline, and with the in-kernel
guard besides.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import subprocess
import sys

import pytest

from lib.core.record import read_record
from lib.reproduce import chapters_in_toc

CHAPTERS = chapters_in_toc()
#: Metrics that measure time on this machine, not the method: never compared across runs.
TIMING = re.compile(r"(second|_s$|_s_|time|wall|speedup|latency|_ms|rtf|throughput|per_s)")
FIRST_RUN: dict[str, dict] = {}


def _run(chapter: str, out, cache: str | None = None) -> dict:
    env = dict(os.environ)
    if cache is not None:
        env["BOOK_CACHE_DIR"] = cache
    proc = subprocess.run([sys.executable, "-m", "lib.reproduce", chapter, "--scale", "smoke",
                           "--no-network", "--out", str(out)],
                          capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, f"{chapter} failed:\n{proc.stderr[-4000:]}"
    return read_record(out / f"{chapter}-smoke.json")


@pytest.mark.chapter
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_at_smoke_scale_offline_and_writes_its_record(chapter, tmp_path):
    record = _run(chapter, tmp_path)
    assert record["chapter"] == chapter and record["scale"] == "smoke"
    assert record["metrics"], "a chapter must record metrics"
    numbers = [v for v in record["metrics"].values()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert numbers, "a chapter's metrics must hold at least one number"
    assert record["wall_time_s"] > 0 and record["notebook_wall_time_s"] > 0
    assert (tmp_path / f"{chapter}-smoke.ipynb").exists()
    FIRST_RUN[chapter] = record


def _comparable(chapter: str, metrics: dict) -> dict[str, float]:
    try:
        extra = getattr(importlib.import_module(f"lib.papers.{chapter}"),
                        "NONDETERMINISTIC_METRICS", ())
    except ModuleNotFoundError:
        extra = ()
    skip = [TIMING, *(re.compile(p) for p in extra)]
    return {k: v for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            and not any(p.search(k) for p in skip)}


@pytest.mark.chapter
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_same_seed_from_an_empty_cache_gives_the_same_numbers(chapter, tmp_path):
    if chapter not in FIRST_RUN:
        pytest.skip("its smoke run did not pass")
    again = _run(chapter, tmp_path / "out", cache=str(tmp_path / "fresh-cache"))
    first = _comparable(chapter, FIRST_RUN[chapter]["metrics"])
    second = _comparable(chapter, again["metrics"])
    assert first.keys() == second.keys()
    differ = {k: (first[k], second[k]) for k in first
              if not (first[k] == second[k]
                      or (isinstance(first[k], float) and math.isnan(first[k])
                          and math.isnan(second[k])))}
    assert not differ, f"{chapter}: same seed, other numbers (rebuilt from scratch): {differ}"
