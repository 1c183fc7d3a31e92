import warnings

import pytest
import torch

from lib.core import CheckpointManager, CheckpointWarning, ForeignCheckpointWarning
from lib.core.checkpoint import atomic_torch_save, safe_torch_load


def _state(v: float):
    return {"w": torch.full((3,), v), "step_size": v, "names": ["a", "b"]}


def test_save_load_roundtrip_and_rotation(tmp_path):
    mgr = CheckpointManager(tmp_path, keep=2, run_key="r")
    for step in (10, 20, 30):
        mgr.save(step, _state(step))
    assert mgr.steps() == [20, 30], "only the two newest are kept"
    step, state = mgr.load_latest()
    assert step == 30 and torch.equal(state["w"], torch.full((3,), 30.0))


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_digest", "garbage"])
def test_damaged_newest_checkpoint_falls_back_to_previous_with_warning(tmp_path, damage):
    mgr = CheckpointManager(tmp_path, keep=2, run_key="r")
    mgr.save(10, _state(1.0))
    newest = mgr.save(20, _state(2.0))
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 3])
    elif damage == "flip":
        i = len(data) // 2
        newest.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    elif damage == "no_digest":  # killed between the checkpoint's rename and its digest's
        newest.with_suffix(".pt.sha256").unlink()
    else:
        newest.write_bytes(b"not a checkpoint")
    with pytest.warns(CheckpointWarning, match="skipping checkpoint"):
        step, state = mgr.load_latest()
    assert step == 10 and state["step_size"] == 1.0


def test_rotation_never_deletes_the_newest_good_checkpoint(tmp_path):
    mgr = CheckpointManager(tmp_path, keep=1, run_key="r")
    mgr.save(10, _state(1.0))
    # broken files with higher step numbers (a crash, a full disk) must not evict step 10
    for step in (20, 30):
        mgr.path_for(step).write_bytes(b"half written")
        mgr.path_for(step).with_suffix(".pt.sha256").write_text("0" * 64)
    mgr.save(15, _state(1.5))
    assert mgr.steps() == [15], "keep=1: the newest *good* one stays, broken ones go"
    assert mgr.load_latest()[0] == 15
    mgr2 = CheckpointManager(tmp_path / "b", keep=2, run_key="r")
    mgr2.save(5, _state(0.5))
    mgr2.save(7, _state(0.7))
    mgr2.path_for(7).write_bytes(b"")  # corrupted after it was written
    mgr2.save(6, _state(0.6))
    assert mgr2.steps() == [5, 6], "the two newest that verify, not the two highest numbers"


def test_checkpoints_of_another_run_are_refused_and_kept_aside(tmp_path):
    mine = CheckpointManager(tmp_path, run_key="lr=0.1")
    mine.save(30, _state(3.0))
    other = CheckpointManager(tmp_path, run_key="lr=0.2")
    with pytest.warns(ForeignCheckpointWarning, match="another run.*lr=0.1.*starts fresh"):
        assert other.load_latest() is None
    aside = list((tmp_path / "other-runs").rglob("step-*.pt"))
    assert len(aside) == 1, "nothing is deleted: the other run's checkpoint is moved aside"
    other.save(5, _state(0.5))
    assert other.load_latest()[0] == 5 and other.folder_run_key() == "lr=0.2"


def test_a_checkpoint_file_of_another_run_is_never_resumed(tmp_path):
    a = CheckpointManager(tmp_path, run_key="a")
    a.save(10, _state(1.0))
    (tmp_path / "run.json").write_text('{"run_key": "b"}')  # a folder mislabelled by hand
    with pytest.warns(ForeignCheckpointWarning):
        assert CheckpointManager(tmp_path, run_key="b").load_latest() is None


def test_legacy_checkpoints_without_a_run_key_are_not_resumed(tmp_path):
    CheckpointManager(tmp_path).save(10, _state(1.0))  # no run key recorded
    with pytest.warns(ForeignCheckpointWarning, match="unknown-run"):
        assert CheckpointManager(tmp_path, run_key="new").load_latest() is None


def test_all_damaged_means_start_from_scratch(tmp_path):
    mgr = CheckpointManager(tmp_path, run_key="r")
    path = mgr.save(5, _state(0.0))
    path.write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        assert mgr.load_latest() is None
    assert CheckpointManager(tmp_path / "empty", run_key="r").load_latest() is None


def test_atomic_save_leaves_no_temp_files_and_loads_weights_only(tmp_path):
    digest = atomic_torch_save({"x": torch.arange(4)}, tmp_path / "a.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
    assert torch.equal(safe_torch_load(tmp_path / "a.pt", expected_sha256=digest)["x"],
                       torch.arange(4))
    with pytest.raises(ValueError, match="sha256 mismatch"):
        safe_torch_load(tmp_path / "a.pt", expected_sha256="0" * 64)


def test_pickled_objects_are_refused_by_weights_only_load(tmp_path):
    atomic_torch_save({"obj": torch.nn.Linear(2, 2)}, tmp_path / "module.pt")
    with pytest.raises(ValueError, match="cannot be loaded"):
        safe_torch_load(tmp_path / "module.pt")


def test_keep_must_be_positive_and_run_key_a_string(tmp_path):
    with pytest.raises(ValueError, match="keep must be >= 1"):
        CheckpointManager(tmp_path, keep=0)
    with pytest.raises(ValueError, match="run_key must be"):
        CheckpointManager(tmp_path, run_key="")
