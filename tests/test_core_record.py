import json
import math

import numpy as np
import pytest
import torch

from lib.core import read_record, write_record
from lib.core.device import select_device
from lib.papers.foundations.toy import CONFIGS


def test_record_has_everything_and_is_json(tmp_path):
    rec = write_record("demo", "smoke", 3, CONFIGS["smoke"],
                       {"acc": np.float32(0.5), "curve": torch.tensor([1.0, 2.0]), "bad": math.nan},
                       wall_time_s=1.25, out_dir=tmp_path, device="cpu")
    on_disk = json.loads((tmp_path / "demo-smoke.json").read_text())
    assert on_disk == rec
    assert rec["metrics"] == {"acc": 0.5, "curve": [1.0, 2.0], "bad": None}
    assert rec["config"]["steps"] == CONFIGS["smoke"].steps
    assert rec["seed"] == 3 and rec["wall_time_s"] == 1.25 and rec["device"] == "cpu"
    assert rec["versions"]["torch"].startswith("2.") and "python" in rec["versions"]
    assert len(rec["git_commit"]) >= 7
    assert read_record(tmp_path / "demo-smoke.json")["chapter"] == "demo"


@pytest.mark.parametrize("metrics,wall,match", [({}, 1.0, "empty metrics"),
                                                 ({"a": 1}, 0.0, "wall_time_s must be > 0")])
def test_a_run_that_did_nothing_is_refused(tmp_path, metrics, wall, match):
    with pytest.raises(ValueError, match=match):
        write_record("demo", "smoke", 0, CONFIGS["smoke"], metrics, wall, out_dir=tmp_path)


def test_unknown_scale_and_non_record_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown scale"):
        write_record("demo", "medium", 0, CONFIGS["smoke"], {"a": 1}, 1.0, out_dir=tmp_path)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="not a metrics record"):
        read_record(tmp_path / "x.json")


def test_device_selection():
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    assert select_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")
