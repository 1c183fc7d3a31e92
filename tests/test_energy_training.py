"""The energy-constrained training chapter: the guarantee at every budget and for every
method, the steps that must not be silently skipped, and the schedule."""

import math

import pytest
import torch
from torch.nn import functional as F

from lib.core import ArtifactCache, with_knobs
from lib.core.stats import NOT_MEASURED
from lib.energy.input_masks import add_input_masks, input_masks
from lib.energy.projection import energy_projection_masks, magnitude_masks, masks_energy
from lib.energy.systolic import layer_geometries, model_energy_breakdown, weight_costs
from lib.papers.energy_training import CONFIGS, METHODS, compress
from lib.papers.energy_training.method import (
    Batches,
    EnergyKnobs,
    budget_at,
    distillation_loss,
    energy_constrained_training,
    teacher_logits,
)
from lib.papers.energy_training.task import make_task

TINY = with_knobs(CONFIGS["smoke"], n_train=300, n_dev=50, n_test=100, dense_steps=30,
                  steps=12, proj_interval=4)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ArtifactCache(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def task(cache):
    return make_task(TINY, torch.device("cpu"), cache)


@pytest.mark.parametrize("method", METHODS)
def test_final_energy_is_within_the_budget_at_every_budget(method, cache):
    for budget in (0.15, 0.3, 0.5, 0.8):
        out = compress(TINY, method, budget, 0, cache=cache)
        assert out["final_energy"] <= out["budget_energy"] * (1 + 1e-9)
        assert out["energy_ratio"] <= budget * (1 + 1e-9)
        assert out["energy_ratio"] > 0.5 * budget  # the budget is used, not wasted


def _setup(task, masks: bool):
    model = task.teacher("cpu").train()
    geoms = layer_geometries(model, task.example_input)
    if masks:
        add_input_masks(model, geoms)
    batches = Batches(task.data["x_train"], task.data["y_train"],
                      teacher_logits(task.teacher("cpu"), task.data["x_train"]), 32, 0)
    return model, geoms, batches


def test_a_no_op_projection_breaks_the_guarantee(task):
    model, geoms, batches = _setup(task, False)
    dense = sum(e.total for e in model_energy_breakdown(model, geoms))
    knobs = EnergyKnobs(steps=4, proj_interval=2)
    with pytest.raises(AssertionError, match="exceeds the budget"):
        energy_constrained_training(model, batches, geoms, 0.3 * dense, knobs,
                                    use_input_masks=False,
                                    select=lambda ws, c, b: [torch.ones_like(w) for w in ws])


def test_the_mask_step_masks_inputs_and_the_energy_model_sees_it(task):
    model, geoms, batches = _setup(task, True)
    dense_layers = model_energy_breakdown(model, geoms)
    dense = sum(e.total for e in dense_layers)
    knobs = EnergyKnobs(steps=16, proj_interval=2, mask_keep=0.6, mask_share=0.5)
    out = energy_constrained_training(model, batches, geoms, 0.4 * dense, knobs,
                                      use_input_masks=True)
    masks = input_masks(model)
    flat = torch.cat([m.detach().flatten() for m in masks])
    assert set(flat.unique().tolist()) <= {0.0, 1.0}
    assert int(flat.sum()) == math.floor(0.6 * flat.numel())
    after = model_energy_breakdown(model, geoms)
    conv = [i for i, g in enumerate(geoms) if g.kind == "conv"]
    assert all(after[i].input_nnz < dense_layers[i].input_nnz for i in conv)
    assert out["final_energy"] <= 0.4 * dense * (1 + 1e-9)


def test_weighting_by_energy_keeps_more_of_the_weights_than_magnitude(task):
    model = task.teacher("cpu")
    geoms = layer_geometries(model, task.example_input)
    costs = weight_costs(model, geoms)
    ws = [dict(model.named_modules())[g.name].weight.detach() for g in geoms]
    dense = masks_energy(costs, [torch.ones_like(w, dtype=torch.bool) for w in ws])
    for frac in (0.2, 0.4):
        proj = energy_projection_masks(ws, costs, frac * dense)
        mag = magnitude_masks(ws, costs, frac * dense)
        kept = [sum(float((w[m] ** 2).sum()) for w, m in zip(ws, ms, strict=True))
                for ms in (proj, mag)]
        assert masks_energy(costs, proj) <= frac * dense
        assert kept[0] > kept[1]  # the distance |W - P(W)|^2 the projection minimises


def test_budget_decays_geometrically_to_the_target_and_holds():
    b = [budget_at(j, 10, 100.0, 25.0, 0.5) for j in range(10)]
    assert b[0] == pytest.approx(100 * 0.25 ** (1 / 5))
    assert b[4] == pytest.approx(25.0) and b[-1] == 25.0
    assert all(x >= y for x, y in zip(b, b[1:], strict=False))
    assert budget_at(0, 10, 20.0, 25.0, 0.5) == 25.0


def test_distillation_loss_is_the_official_joint_loss():
    z, zt = torch.randn(5, 10), torch.randn(5, 10)
    y = torch.randint(0, 10, (5,))
    ref = 0.5 * ((z - zt) ** 2).mean() + 0.5 * F.cross_entropy(z, y)
    assert distillation_loss(z, zt, y, 0.5) == pytest.approx(float(ref))


@pytest.mark.parametrize("rounds", [1, 2])
def test_each_mask_round_keeps_a_smaller_fraction_of_the_inputs(task, rounds):
    model, geoms, batches = _setup(task, True)
    dense = sum(e.total for e in model_energy_breakdown(model, geoms))
    knobs = EnergyKnobs(steps=24, proj_interval=2, mask_keep=0.9, mask_share=0.5,
                        mask_rounds=rounds)
    energy_constrained_training(model, batches, geoms, 0.4 * dense, knobs, use_input_masks=True)
    flat = torch.cat([m.detach().flatten() for m in input_masks(model)])
    assert int(flat.sum()) == math.floor((1 - 0.1 * rounds) * flat.numel())


def test_the_round_with_the_best_dev_accuracy_is_kept(task):
    from lib.vision.classify import accuracy

    model, geoms, batches = _setup(task, True)
    dense = sum(e.total for e in model_energy_breakdown(model, geoms))
    dev = (task.data["x_dev"], task.data["y_dev"])
    knobs = EnergyKnobs(steps=24, proj_interval=2, mask_keep=0.7, mask_share=0.5,
                        mask_rounds=2)
    out = energy_constrained_training(model, batches, geoms, 0.4 * dense, knobs,
                                      use_input_masks=True, dev=dev)
    assert len(out["rounds_dev_accuracy"]) == 2
    assert accuracy(model, *dev) == pytest.approx(max(out["rounds_dev_accuracy"]))
    assert out["final_energy"] <= 0.4 * dense * (1 + 1e-9)


def test_tuning_gives_every_method_the_same_grid_and_reads_the_dev_split(monkeypatch):
    from lib.papers.energy_training import experiment

    seen = []

    def fake(cfg, method, budget, seed, device="cpu", cache=None):
        seen.append((method, cfg.lr, budget, seed))
        # dev prefers 0.003 for every method; test (never read) prefers 0.01
        return {"dev_accuracy": 1 - abs(cfg.lr - 0.003), "accuracy": 1 - abs(cfg.lr - 0.01)}

    monkeypatch.setattr(experiment, "cached_compress", fake)
    cfg = CONFIGS["tutorial"]
    out = experiment.tune(cfg, grid=(0.001, 0.003, 0.01))  # any grid: the same for all
    assert {m: sorted(lr for mm, lr, *_ in seen if mm == m) for m in cfg.methods} == \
        {m: [0.001, 0.003, 0.01] for m in cfg.methods}
    assert all(b == cfg.claim_budget for _, _, b, _ in seen)
    assert all(r["best"] == 0.003 for r in out.values())


def test_knob_tuning_runs_each_method_at_its_tuned_lr_on_the_dev_split(monkeypatch):
    """The second tuning round: the same grid for every method named, each at its own
    tuned lr, scored by dev (never test) accuracy; an unknown knob is refused."""
    from lib.papers.energy_training import experiment

    seen = []

    def fake(cfg, method, budget, seed, device="cpu", cache=None):
        seen.append((method, cfg.decay_fraction, cfg.lr, budget))
        return {"dev_accuracy": 1 - abs(cfg.decay_fraction - 0.3),
                "accuracy": 1 - abs(cfg.decay_fraction - 0.9)}

    monkeypatch.setattr(experiment, "cached_compress", fake)
    cfg = CONFIGS["tutorial"]
    methods = ("projection", "magnitude")
    out = experiment.tune_knob(cfg, "decay_fraction", (0.3, 0.6, 0.9), methods)
    assert sorted((m, d) for m, d, *_ in seen) == sorted(
        (m, d) for m in methods for d in (0.3, 0.6, 0.9))
    assert all(lr == dict(cfg.method_lr)[m] for m, _, lr, _ in seen)
    assert all(b == cfg.claim_budget for *_, b in seen)
    assert all(r["best"] == 0.3 for r in out.values())
    with pytest.raises(ValueError, match="not a tunable knob"):
        experiment.tune_knob(cfg, "decay", (0.3,), methods)


def test_the_claims_are_judged_at_the_claim_budget():
    from lib.papers.energy_training import CLAIMS, comparison

    cfg = with_knobs(CONFIGS["tutorial"], budgets=(0.12, 0.2), claim_budget=0.12, seeds=(0, 1))
    g = torch.Generator().manual_seed(0)
    runs = [{"method": m, "budget": b, "seed": s, "correct": (torch.rand(50, generator=g)
                                                             < (0.9 if b == 0.2 else 0.5)).double(),
             "accuracy": 0.0, "energy_ratio": b, "weights_kept": 0.1, "final_energy": b,
             "budget_energy": b} for m in METHODS for b in cfg.budgets for s in cfg.seeds]
    ivs = comparison(cfg, runs)["intervals"]
    metrics = {}
    for prefix, iv in ivs.items():
        metrics.update(iv.as_metrics(prefix))
    assert all(c.evaluate(metrics).verdict != NOT_MEASURED for c in CLAIMS)
    assert ivs["acc_projection_vs_magnitude_claim"] is ivs["acc_projection_vs_magnitude_12"]
    assert ivs["acc_projection_vs_magnitude_claim"] is not ivs["acc_projection_vs_magnitude_20"]


def test_the_tutorial_uses_the_tuned_learning_rates():
    from lib.papers.energy_training import TUNING

    cfg = CONFIGS["tutorial"]
    for m, accs in TUNING["dev_accuracy"].items():
        assert sorted(accs) == sorted(TUNING["grid"])  # the same grid for every method
        finite = {lr: a for lr, a in accs.items() if a == a}
        best = max(finite.values())
        assert finite[TUNING["chosen"][m]] == best
        assert dict(cfg.method_lr)[m] == TUNING["chosen"][m]
    assert set(TUNING["dev_accuracy"]) == set(cfg.methods)


def test_the_tutorial_uses_the_second_round_of_tuning():
    """Each tuned knob is the dev-best value of its grid (ties: nearest the config's own), the
    grid is the same for every method that has the knob, and the tutorial config applies it
    to that method only (``knobs_of``)."""
    from lib.papers.energy_training import KNOB_GRIDS, TUNING
    from lib.papers.energy_training.experiment import knobs_of

    cfg = CONFIGS["tutorial"]
    assert set(TUNING["knobs"]) == set(KNOB_GRIDS)
    tuned = {(m, k): v for m, k, v in cfg.method_knobs}
    for knob, rec in TUNING["knobs"].items():
        grids = {tuple(sorted(accs)) for accs in rec["dev_accuracy"].values()}
        assert len(grids) == 1 and set(KNOB_GRIDS[knob][0]) <= set(next(iter(grids)))
        assert set(rec["dev_accuracy"]) == set(KNOB_GRIDS[knob][1])
        own = getattr(cfg, knob)
        for m, accs in rec["dev_accuracy"].items():
            best = max(accs.values())
            ties = [v for v, a in accs.items() if a == best]
            assert rec["chosen"][m] == min(ties, key=lambda v: abs(v - own))
            assert tuned[(m, knob)] == rec["chosen"][m]
            assert getattr(knobs_of(cfg, m), knob) == rec["chosen"][m]
    assert knobs_of(cfg, "random").decay_fraction == cfg.decay_fraction
