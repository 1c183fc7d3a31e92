import warnings

import pytest
import torch

from lib.core import CheckpointManager, CheckpointWarning
from lib.core.checkpoint import atomic_torch_save, safe_torch_load


def _state(v: float):
    return {"w": torch.full((3,), v), "step_size": v, "names": ["a", "b"]}


def test_save_load_roundtrip_and_rotation(tmp_path):
    mgr = CheckpointManager(tmp_path, keep=2)
    for step in (10, 20, 30):
        mgr.save(step, _state(step))
    assert mgr.steps() == [20, 30], "only the two newest are kept"
    step, state = mgr.load_latest()
    assert step == 30 and torch.equal(state["w"], torch.full((3,), 30.0))


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_digest", "garbage"])
def test_damaged_newest_checkpoint_falls_back_to_previous_with_warning(tmp_path, damage):
    mgr = CheckpointManager(tmp_path, keep=2)
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


def test_all_damaged_means_start_from_scratch(tmp_path):
    mgr = CheckpointManager(tmp_path)
    path = mgr.save(5, _state(0.0))
    path.write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        assert mgr.load_latest() is None
    assert CheckpointManager(tmp_path / "empty").load_latest() is None


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


def test_keep_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="keep must be >= 1"):
        CheckpointManager(tmp_path, keep=0)
