from dataclasses import dataclass

import pytest

from lib.core import ScaleConfigs, with_knobs
from lib.papers.foundations.toy import CONFIGS


@dataclass(frozen=True)
class Cfg:
    steps: int
    lr: float
    name: str
    widths: tuple[int, ...] = (1, 2)
    maybe: int | None = None


CFGS = ScaleConfigs(smoke=Cfg(1, 0.1, "a"), tutorial=Cfg(10, 0.1, "b"), full=Cfg(100, 0.1, "c"))


def test_scale_lookup_and_unknown_scale_lists_valid_ones():
    assert CFGS["tutorial"].steps == 10
    with pytest.raises(ValueError, match="unknown scale 'huge'.*smoke, tutorial, full"):
        CFGS["huge"]


def test_knob_override_and_unknown_knob_lists_valid_ones():
    cfg = CFGS.get("smoke", steps=5, lr=1)  # an int is a valid float and becomes one
    assert cfg.steps == 5 and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert CFGS["smoke"].steps == 1, "the scale instance must not change"
    with pytest.raises(ValueError, match=r"unknown knob\(s\) stpes.*valid knobs are .*steps"):
        CFGS.get("smoke", stpes=5)


@pytest.mark.parametrize("knobs", [{"steps": "5"}, {"steps": 2.5}, {"lr": "x"},
                                   {"widths": [1, "a"]}, {"steps": True}])
def test_knob_of_wrong_type_is_refused(knobs):
    with pytest.raises(ValueError, match="expects"):
        CFGS.get("smoke", **knobs)


def test_optional_and_tuple_knobs_accept_valid_values():
    assert CFGS.get("smoke", maybe=None).maybe is None
    assert CFGS.get("smoke", maybe=3).maybe == 3
    assert CFGS.get("smoke", widths=(4, 5, 6)).widths == (4, 5, 6)


def test_configs_must_be_frozen_and_of_one_class():
    @dataclass
    class Mutable:
        x: int

    with pytest.raises(TypeError, match="frozen"):
        ScaleConfigs(smoke=Mutable(1), tutorial=Mutable(2), full=Mutable(3))
    with pytest.raises(TypeError, match="one config class"):
        ScaleConfigs(smoke=Cfg(1, 0.1, "a"), tutorial=CONFIGS["smoke"], full=Cfg(1, 0.1, "a"))
    with pytest.raises(TypeError):
        with_knobs({"steps": 1}, steps=2)


def test_scales_are_ordered_by_cost():
    assert CONFIGS["smoke"].steps < CONFIGS["tutorial"].steps < CONFIGS["full"].steps
