"""The papermill runner: parameters, errors that say what is wrong, failing chapters."""

import json

import nbformat
import pytest

from lib import reproduce
from lib.reproduce import ChapterFailed, parse_param, run_chapter


def test_parse_param():
    assert parse_param("seed=3") == ("seed", 3)
    assert parse_param("lr=1e-3") == ("lr", 1e-3)
    assert parse_param("name=abc") == ("name", "abc")
    assert parse_param("levels=[0.5, 0.9]") == ("levels", [0.5, 0.9])
    with pytest.raises(ValueError, match="key=value"):
        parse_param("seed")


def test_unknown_chapter_scale_or_parameter_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown chapter 'nope'.*foundations"):
        run_chapter("nope", "smoke")
    with pytest.raises(ValueError, match="unknown scale 'big'"):
        run_chapter("foundations", "big")
    with pytest.raises(ValueError, match="has no parameter.*bogus.*parameters are scale"):
        run_chapter("foundations", "smoke", {"bogus": 1})


def _fake_chapter(tmp_path, monkeypatch, body: str):
    chapters = tmp_path / "chapters"
    chapters.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('scale = "tutorial"\nseed = 0\ndevice = "auto"',
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, chapters / "fake.ipynb")
    monkeypatch.setattr(reproduce, "CHAPTERS_DIR", chapters)


def test_failing_cell_raises_with_its_error(tmp_path, monkeypatch):
    _fake_chapter(tmp_path, monkeypatch, "raise RuntimeError('boom in cell')")
    with pytest.raises(ChapterFailed, match="RuntimeError: boom in cell"):
        run_chapter("fake", "smoke", out_dir=tmp_path / "out")


def test_chapter_that_writes_no_record_fails(tmp_path, monkeypatch):
    _fake_chapter(tmp_path, monkeypatch, "x = 1 + 1")
    with pytest.raises(ChapterFailed, match="wrote no metrics record"):
        run_chapter("fake", "smoke", out_dir=tmp_path / "out")


def test_network_guard_is_active_in_the_kernel(tmp_path, monkeypatch):
    _fake_chapter(tmp_path, monkeypatch,
                  "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)")
    with pytest.raises(ChapterFailed, match="network access blocked"):
        run_chapter("fake", "smoke", out_dir=tmp_path / "out", block_network=True)


def test_record_gets_parameters_and_notebook_time(tmp_path, monkeypatch):
    _fake_chapter(tmp_path, monkeypatch,
                  "import lib.core as core\n"
                  "core.write_record('fake', scale, seed, {'k': 1}, {'v': seed * 2}, 0.5)")
    rec = run_chapter("fake", "smoke", {"seed": 4}, out_dir=tmp_path / "out")
    assert rec["metrics"] == {"v": 8} and rec["scale"] == "smoke" and rec["seed"] == 4
    assert rec["params"] == {"scale": "smoke", "seed": 4} and rec["notebook_wall_time_s"] > 0
    on_disk = json.loads((tmp_path / "out" / "fake-smoke.json").read_text())
    assert on_disk == rec
    assert (tmp_path / "out" / "fake-smoke.ipynb").exists()


def test_cli_exit_codes(tmp_path, monkeypatch, capsys):
    assert reproduce.main(["--list"]) == 0
    assert "foundations" in capsys.readouterr().out
    assert reproduce.main(["nope", "--scale", "smoke"]) == 2
    assert "unknown chapter" in capsys.readouterr().err
    _fake_chapter(tmp_path, monkeypatch, "1/0")
    assert reproduce.main(["fake", "--scale", "smoke", "--out", str(tmp_path / "o")]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_parameter_types_are_checked_before_any_kernel_starts(monkeypatch, tmp_path):
    _fake_chapter(tmp_path, monkeypatch, "raise SystemExit('the kernel must not start')")
    with pytest.raises(ValueError, match=r"seed='abc' is a str, but seed takes a int"):
        run_chapter("fake", "smoke", {"seed": "abc"})
    with pytest.raises(ValueError, match="seed=True is a bool"):
        run_chapter("fake", "smoke", {"seed": True})
    with pytest.raises(ValueError, match="device=3 is a int"):
        run_chapter("fake", "smoke", {"device": 3})


def test_cell_timeout_and_dead_kernel_name_the_chapter_and_cell(tmp_path, monkeypatch):
    _fake_chapter(tmp_path, monkeypatch, "import time\ntime.sleep(30)")
    with pytest.raises(ChapterFailed, match=r"'fake'.*cell 1 \('import time'\) ran past the "
                                            r"per-cell timeout of 2 s"):
        run_chapter("fake", "smoke", out_dir=tmp_path / "o", cell_timeout=2)
    _fake_chapter(tmp_path, monkeypatch, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    with pytest.raises(ChapterFailed, match=r"the kernel died in cell 1 \('import os, signal'\)"):
        run_chapter("fake", "smoke", out_dir=tmp_path / "o2")


def test_per_scale_cell_timeouts():
    assert reproduce.CELL_TIMEOUT_S["full"] is None, "real training cells run for hours"
    assert reproduce.CELL_TIMEOUT_S["smoke"] and reproduce.CELL_TIMEOUT_S["tutorial"]


def test_gpus_and_step_limit_reach_the_kernel(tmp_path, monkeypatch):
    _fake_chapter(tmp_path, monkeypatch,
                  "import os, lib.core as core\n"
                  "from lib.core.distributed import requested_workers\n"
                  "core.write_record('fake', scale, seed, {}, {'gpus': requested_workers(),\n"
                  "    'limit': core.step_limit()}, 0.5)")
    rec = run_chapter("fake", "full", out_dir=tmp_path / "o", gpus=3, max_steps=2)
    assert rec["metrics"] == {"gpus": 3, "limit": 2} and rec["max_steps"] == 2
    rec = run_chapter("fake", "smoke", {"max_steps": 4}, out_dir=tmp_path / "o")  # -p alias
    assert rec["metrics"]["limit"] == 4
    import os

    assert "BOOK_GPUS" not in os.environ and "BOOK_MAX_STEPS" not in os.environ


def test_cli_all_goes_on_past_a_failure_and_summarises(tmp_path, monkeypatch, capsys):
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    for name, body in (("bad", "1/0"), ("good", "import lib.core as core\n"
                       "core.write_record('good', scale, seed, {}, {'v': 1}, 0.5)")):
        nb = nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_code_cell('scale = "tutorial"\nseed = 0\ndevice = "auto"',
                                      metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(body)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, chapters / f"{name}.ipynb")
    monkeypatch.setattr(reproduce, "CHAPTERS_DIR", chapters)
    monkeypatch.setattr(reproduce, "chapters_in_toc", lambda: ["bad", "good"])
    code = reproduce.main(["--all", "--scale", "smoke", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 1
    assert "bad" in out and "failed" in out and "ZeroDivisionError" in out
    assert "good" in out and (tmp_path / "o" / "good-smoke.json").exists()


def test_cli_failure_is_one_message_without_the_runners_traceback(tmp_path, monkeypatch,
                                                                 capsys):
    _fake_chapter(tmp_path, monkeypatch, "raise KeyError('missing thing')")
    assert reproduce.main(["fake", "--scale", "smoke", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "chapter 'fake' failed at scale 'smoke' in cell 1" in err and "KeyError" in err
    assert "Traceback" not in err and "reproduce.py" not in err
