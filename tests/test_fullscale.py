"""Every chapter's *full* configuration runs end to end on fixture data, on this CPU.

``python -m lib.reproduce <chapter> --scale full --max-steps N [--gpus 2]`` with the data
root pointed at fixtures in the exact on-disk formats (``tests/fixtures/full_<chapter>.py``
says which, and which setups and workers): real model sizes, real loaders, the real
launcher (gloo on CPU for data-parallel chapters), every training loop capped at N steps.
Marked ``fullscale``: run alone with ``make test-full`` (``pytest -m fullscale``).

A fixture may set ``HEAVY = "<why>"`` (a dict ``{setup: why}`` for some setups only) when
its dry run cannot finish in the CI's time on a 2-core CPU (e.g. a 77 M-parameter model
through five data-parallel launches): ``make test`` then skips it with that reason, and
``make test-full`` (``BOOK_TEST_FULL=1``) runs it. ``make test`` dry-runs one setup of each
chapter, its ``CI_SETUP`` (``"default"`` unless the fixture names another, e.g. when the
default setup is heavy); ``make test-full`` every setup. A fixture may raise the per-cell
timeout (``CELL_TIMEOUT``, 1200 s) and the whole run's (``TIMEOUT``, 1800 s) for a heavy setup.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest

from lib.core.paths import REPO_ROOT
from lib.reproduce import chapters_in_toc, is_data_parallel

CHAPTERS = chapters_in_toc()


def _fixture(chapter: str):
    try:
        return importlib.import_module(f"tests.fixtures.full_{chapter}")
    except ModuleNotFoundError:
        return None


def _cases():
    for chapter in CHAPTERS:
        spec = _fixture(chapter)
        for setup in getattr(spec, "SETUPS", ["default"]):
            yield pytest.param(chapter, setup, id=f"{chapter}-{setup}")


def test_every_chapter_has_a_full_scale_dry_run():
    missing = [c for c in CHAPTERS if _fixture(c) is None]
    assert not missing, (f"chapters without tests/fixtures/full_<chapter>.py: {missing}; each "
                         "chapter's full configuration must run end to end on fixtures")
    for chapter in CHAPTERS:
        spec = _fixture(chapter)
        setups = getattr(spec, "SETUPS", ["default"])
        ci_setup = getattr(spec, "CI_SETUP", "default")
        assert ci_setup in setups, (
            f"{chapter}: CI_SETUP {ci_setup!r} is not one of its SETUPS {setups}")
        if is_data_parallel(chapter):
            assert getattr(spec, "GPUS", None) == 2, (
                f"{chapter} trains data-parallel: its dry run must go through the launcher "
                "with --gpus 2 (gloo on CPU)")


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory):
    made: dict[str, str] = {}

    def root(chapter: str) -> str:
        if chapter not in made:
            path = tmp_path_factory.mktemp(f"data-{chapter}")
            _fixture(chapter).write(path)
            made[chapter] = str(path)
        return made[chapter]

    return root


@pytest.mark.fullscale
@pytest.mark.parametrize("chapter, setup", list(_cases()))
def test_full_configuration_runs_end_to_end_on_fixtures(chapter, setup, data_roots, tmp_path):
    spec = _fixture(chapter)
    if spec is None:
        pytest.fail(f"{chapter} has no full-scale fixture (tests/fixtures/full_{chapter}.py)")
    heavy = getattr(spec, "HEAVY", None)
    if isinstance(heavy, dict):
        heavy = heavy.get(setup)
    if os.environ.get("BOOK_TEST_FULL") != "1":
        if heavy:
            pytest.skip(f"heavy dry run, skipped outside make test-full: {heavy}")
        if setup != getattr(spec, "CI_SETUP", "default"):
            pytest.skip(f"{chapter}'s other full-scale setups run in make test-full (the "
                        "test suite dry-runs one setup of each chapter: its CI_SETUP)")
    cmd = [sys.executable, "-m", "lib.reproduce", chapter, "--scale", "full",
           "--max-steps", str(getattr(spec, "MAX_STEPS", 2)), "--out", str(tmp_path),
           "--cell-timeout", str(getattr(spec, "CELL_TIMEOUT", 1200))]
    if getattr(spec, "GPUS", None):
        cmd += ["--gpus", str(spec.GPUS)]
    params = dict(getattr(spec, "PARAMS", {}))
    if setup != "default":
        params["setup"] = setup
    for key, value in params.items():
        cmd += ["-p", f"{key}={value!r}" if not isinstance(value, str) else f"{key}={value}"]
    env = {**os.environ, "BOOK_DATA_DIR": data_roots(chapter),
           "BOOK_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("OMP_NUM_THREADS", None)  # full scale uses the machine's threads
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=getattr(spec, "TIMEOUT", 1800))
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-5000:]}"
    suffix = "" if setup == "default" else f"-{setup}"
    record = json.loads((tmp_path / f"{chapter}-full{suffix}.json").read_text())
    assert record["scale"] == "full" and record["max_steps"] == getattr(spec, "MAX_STEPS", 2)
    assert record["metrics"], "the dry run must still reach the chapter's record"
