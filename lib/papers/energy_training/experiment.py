"""The energy-constrained training chapter's experiment: configs per scale, every method at
every energy budget and seed (cached), the paired comparison, and the greedy-vs-exact check.

Every method starts from the same dense teacher, trains the same number of forward/backward
passes (``steps``) with the same loss (distillation + CE), optimizer and schedule, and ends
at a modelled energy ``<= budget x dense energy`` (checked for each run):

* ``projection``: the paper's W-step (weighted sparse projection, budget decaying);
* ``projection+mask``: the paper's W-step, M-step (input masks), W-step at the target;
* ``magnitude``: the same gradual schedule, keeping the largest ``|w|`` within the budget;
* ``energy-aware``: the same schedule, each projection pruning the layer costing most
  energy first (energy-aware pruning, Yang et al. 2017, its allocation rule);
* ``random``: the trivial baseline: a random mask at the target energy, then fine-tuned.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lib.core import ArtifactCache, ScaleConfigs, derive_seed, seed_everything, with_knobs
from lib.core.claims import Claim
from lib.core.stats import paired_bootstrap
from lib.energy.input_masks import add_input_masks
from lib.energy.projection import (
    energy_aware_masks,
    energy_projection_masks,
    exact_energy_projection,
    magnitude_masks,
    masks_energy,
    min_energy,
    random_masks,
)
from lib.energy.systolic import (
    EYERISS,
    SystolicArray,
    layer_geometries,
    model_energy_breakdown,
    systolic_energy,
    weight_costs,
)

from .method import (
    EnergyKnobs,
    apply_masks,
    energy_constrained_training,
    weight_step,
    weights_of,
)
from .task import make_task

__all__ = ["CLAIMS", "CONFIGS", "LR_GRID", "METHODS", "PAIRS", "PAPER", "SETUPS", "TUNING",
           "EnergyTrainingConfig", "cached_compress", "comparison", "compress",
           "greedy_vs_exact", "layer_table", "metrics_of", "run", "setup_config", "tune",
           "tuning_table", "KNOB_GRIDS", "knob_tuning_table", "tune_knob"]

METHODS = ("projection", "projection+mask", "magnitude", "energy-aware", "random")


@dataclass(frozen=True)
class EnergyTrainingConfig:
    """Knobs of the chapter."""

    dataset: str                    # synthetic_digits | mnist
    model: str                      # lenet5_like | lenet5
    model_kwargs: tuple             # as ((name, value), ...)
    n_train: int                    # synthetic digits only
    n_dev: int
    n_test: int
    dense_steps: int                # the teacher (cached, shared with the other chapters)
    dense_lr: float
    batch_size: int
    steps: int                      # forward/backward passes of every compressed run
    lr: float
    mask_lr: float
    proj_interval: int
    decay_fraction: float
    mask_keep: float
    mask_share: float
    distill: float
    budgets: tuple                  # fractions of the dense network's modelled energy
    seeds: tuple
    methods: tuple
    claim_budget: float             # the budget the claims are judged at
    exact_cases: int                # random small cases of the greedy-vs-exact check
    data_root: str = ""             # full scale: "" = lib.core.paths.data_dir()
    mask_rounds: int = 1            # outer rounds of (M-step, W-step) of projection+mask
    method_lr: tuple = ()           # ((method, SGD lr), ...): tuned on dev (TUNING); else lr
    workers: int = 0                # data-loading processes (ImageNet)
    # ((method, knob, value), ...): a knob of EnergyKnobs tuned per method on dev
    # (``tune_knob``, TUNING["knobs"]); it wins over the config's shared value
    method_knobs: tuple = ()

    def __post_init__(self):
        bad = [b for b in self.budgets if not 0 < b < 1]
        if bad:
            raise ValueError(f"budgets are fractions of the dense energy in (0, 1), got {bad}")
        if self.claim_budget not in self.budgets:
            raise ValueError(f"claim_budget {self.claim_budget} is not among the budgets "
                             f"{self.budgets}")
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; valid: {METHODS}")
        bad = sorted({k for _, k, _ in self.method_knobs}
                     - {f.name for f in dataclasses.fields(EnergyKnobs)})
        if bad:
            raise ValueError(f"method_knobs names unknown knob(s) {bad}; valid: the fields "
                             "of EnergyKnobs")


#: Budgets: 20-60% of dense left every method within 0.4 points of the dense network (the
#: last stop's run); the input and output traffic alone is 10.5% of dense, so the budgets
#: now span 12-20%, where the allocation of the little energy left to the weights matters.
#: The claims are judged at the lowest budget.
_TUTORIAL = EnergyTrainingConfig(
    dataset="synthetic_digits", model="lenet5_like", model_kwargs=(), n_train=20000,
    n_dev=2000, n_test=5000, dense_steps=3000, dense_lr=0.05, batch_size=64, steps=150,
    lr=0.01, mask_lr=0.01, proj_interval=10, decay_fraction=0.6, mask_keep=0.9,
    mask_share=0.25, distill=0.5, budgets=(0.12, 0.15, 0.2), seeds=(0, 1, 2),
    methods=METHODS, claim_budget=0.12, exact_cases=20, mask_rounds=2,
    method_lr=(("projection", 0.01), ("projection+mask", 0.003), ("magnitude", 0.01),
               ("energy-aware", 0.01), ("random", 0.01)),
    method_knobs=(("projection", "decay_fraction", 0.15),
                  ("projection+mask", "decay_fraction", 0.15),
                  ("projection+mask", "mask_lr", 0.03),
                  ("magnitude", "decay_fraction", 0.3),
                  ("energy-aware", "decay_fraction", 0.3)))

CONFIGS = ScaleConfigs(
    smoke=with_knobs(_TUTORIAL, n_train=600, n_dev=100, n_test=200, dense_steps=60, steps=20,
                     budgets=(0.3,), claim_budget=0.3, seeds=(0,), exact_cases=3),
    tutorial=_TUTORIAL,
    full=with_knobs(  # Caffe's LeNet-5 on MNIST (the paper's first experiment)
        _TUTORIAL, dataset="mnist", model="lenet5", n_dev=5000, dense_steps=20000,
        dense_lr=0.05, batch_size=128, steps=20000, lr=1e-3, mask_lr=1e-3,
        budgets=(0.2, 0.4, 0.6), claim_budget=0.2, seeds=(0, 1, 2), exact_cases=20),
)

#: The paper's full-scale setups (``setup_config("full", name)``); ``default`` is LeNet-5 on
#: MNIST, the paper's first experiment.
#: The ImageNet setups start from torchvision's pretrained AlexNet / SqueezeNet v1.0 (the
#: paper's starting points), train with the official learning rates (SGD 1e-3, mask Adam
#: 1e-4), one seed (the GPU cost of three is not in our budget) and project every 100 steps
#: (official: every 10; one greedy projection over AlexNet's 61 M weights costs seconds).
#: Budgets: the energies the paper reports for its own method are not in our notes; 30% and
#: 50% of dense are our choice, to be set beside the paper's table.
_IMAGENET = dict(dataset="imagenet", n_dev=10_000, batch_size=128, steps=100_000, lr=1e-3,
                 mask_lr=1e-4, proj_interval=100, seeds=(0,), exact_cases=20, workers=8)
SETUPS: dict[str, dict[str, Any]] = {
    "default": {},
    "alexnet-imagenet": dict(_IMAGENET, model="alexnet", budgets=(0.3,), claim_budget=0.3),
    "squeezenet-imagenet": dict(_IMAGENET, model="squeezenet1_0", budgets=(0.5,),
                                claim_budget=0.5),
}


def setup_config(scale: str, setup: str = "default", **knobs: Any) -> EnergyTrainingConfig:
    """``CONFIGS[scale]`` with a named full-scale setup's knobs, then ``knobs``."""
    if setup not in SETUPS:
        raise ValueError(f"unknown setup {setup!r}; valid setups are {', '.join(SETUPS)}")
    if setup != "default" and scale != "full":
        raise ValueError(f"setup {setup!r} is a full-scale setup; use scale='full'")
    return with_knobs(CONFIGS[scale], **{**SETUPS[setup], **knobs})


#: The grid every method's SGD learning rate is tuned on (the same grid for every method).
LR_GRID = (0.001, 0.003, 0.01, 0.03)


#: Tuning, the same effort for every method: ``tune(CONFIGS["tutorial"])`` ran each method
#: at the claim budget (12%), seed 0, with the SGD learning rate from ``LR_GRID`` and scored
#: it on the 2,000 dev images (never the test set); NaN: the run diverged. The best value per
#: method is the tutorial's ``method_lr``. A second round (``TUNING["knobs"]``, below) then
#: tuned the budget decay and the masks' Adam rate at those rates; what stays untuned is
#: ``TUNING["untuned"]``.
TUNING = {
    "knob": "SGD learning rate (W-steps and fine-tuning)", "grid": LR_GRID, "budget": 0.12,
    "seed": 0, "split": "dev (2,000 images)", "cpu_seconds": 67,
    "dev_accuracy": {
        "projection": {0.001: 0.2195, 0.003: 0.3155, 0.01: 0.5, 0.03: 0.1115},
        "projection+mask": {0.001: 0.481, 0.003: 0.783, 0.01: 0.507, 0.03: float("nan")},
        "magnitude": {0.001: 0.328, 0.003: 0.408, 0.01: 0.4795, 0.03: float("nan")},
        "energy-aware": {0.001: 0.3025, 0.003: 0.464, 0.01: 0.625, 0.03: 0.1},
        "random": {0.001: 0.1, 0.003: 0.1, 0.01: 0.1, 0.03: 0.1},
    },
    "chosen": {"projection": 0.01, "projection+mask": 0.003, "magnitude": 0.01,
               "energy-aware": 0.01, "random": 0.01},
    # the second round (``tune_knob``), run 2026-12-02 at each method's tuned lr, seed 0,
    # 12%, dev: first the budget decay over the same grid for every gradual method (0.3 /
    # 0.6 / 0.9, then 0.15 and 0.05 because three optima sat on the grid's lower edge), then
    # the masks' Adam rate at the masked method's chosen decay (0.01 / 0.03 / 0.1, after a
    # first pass at decay 0.6 found 0.03 on the edge of 0.003 / 0.01 / 0.03). One pass of
    # coordinate-wise tuning (the lr was not re-tuned at the new decay); 27 runs, about 210
    # CPU s. Ties go to the value nearest the config's (0.6): projection+mask's 0.05 / 0.15
    # tie (79.8 %) went to 0.15.
    "knobs": {
        "decay_fraction": {
            "dev_accuracy": {
                "projection": {0.05: 0.295, 0.15: 0.725, 0.3: 0.7205, 0.6: 0.5, 0.9: 0.1575},
                "projection+mask": {0.05: 0.798, 0.15: 0.798, 0.3: 0.7635, 0.6: 0.783,
                                    0.9: 0.7745},
                "magnitude": {0.05: 0.1, 0.15: 0.611, 0.3: 0.753, 0.6: 0.4795, 0.9: 0.307},
                "energy-aware": {0.05: 0.4975, 0.15: 0.1185, 0.3: 0.756, 0.6: 0.625,
                                 0.9: 0.252},
            },
            "chosen": {"projection": 0.15, "projection+mask": 0.15, "magnitude": 0.3,
                       "energy-aware": 0.3},
        },
        "mask_lr": {
            "dev_accuracy": {"projection+mask": {0.01: 0.798, 0.03: 0.8505, 0.1: 0.783}},
            "chosen": {"projection+mask": 0.03},
        },
    },
    "untuned": "the projection interval, the mask schedule (keep 0.9, share 0.25, two "
               "rounds) and the distillation weight: the official values or Our reading, "
               "the same for every method that has them",
}


def knob_tuning_table() -> list[dict[str, Any]]:
    """``TUNING["knobs"]`` as rows: dev accuracy per method, knob and value, and the
    choice."""
    return [{"knob": knob, "method": m, **{f"{v:g}": acc for v, acc in accs.items()},
             "chosen": rec["chosen"][m]}
            for knob, rec in TUNING.get("knobs", {}).items()
            for m, accs in rec["dev_accuracy"].items()]


def tuning_table() -> list[dict[str, Any]]:
    """``TUNING`` as rows: dev accuracy per method and learning rate, and the choice."""
    return [{"method": m, **{f"lr {lr:g}": acc for lr, acc in accs.items()},
             "chosen lr": TUNING["chosen"][m]} for m, accs in TUNING["dev_accuracy"].items()]


#: What the paper reports (Sec. 5), for the chapter's comparison.
PAPER = {
    "networks": "LeNet-5 (MNIST), AlexNet and SqueezeNet (ImageNet), MobileNetV2 "
                "(MS-Celeb-1M)",
    "baselines": "magnitude-based pruning, energy-aware pruning, and others",
    "claim": "higher accuracy than prior energy-saving methods at the same or lower energy",
}


def lr_of(cfg: EnergyTrainingConfig, method: str | None) -> float:
    """The method's SGD learning rate: its tuned value (``method_lr``), else ``lr``."""
    return dict(cfg.method_lr).get(method, cfg.lr)


def knobs_of(cfg: EnergyTrainingConfig, method: str | None = None) -> EnergyKnobs:
    """The method's training knobs: the config's, its tuned lr, and its ``method_knobs``."""
    knobs = EnergyKnobs(steps=cfg.steps, batch_size=cfg.batch_size, lr=lr_of(cfg, method),
                        proj_interval=cfg.proj_interval, decay_fraction=cfg.decay_fraction,
                        distill=cfg.distill, mask_lr=cfg.mask_lr, mask_keep=cfg.mask_keep,
                        mask_share=cfg.mask_share, mask_rounds=cfg.mask_rounds)
    own = {k: v for m, k, v in cfg.method_knobs if m == method}
    return dataclasses.replace(knobs, **own) if own else knobs


def selector(method: str, seed: int):
    """The projection a method applies at each of its projections."""
    if method in ("projection", "projection+mask"):
        return lambda ws, costs, b: energy_projection_masks(ws, costs, b, marginal=True)
    if method == "magnitude":
        return magnitude_masks
    if method == "energy-aware":
        return energy_aware_masks
    raise ValueError(f"{method} has no gradual projection")


def compress(cfg: EnergyTrainingConfig, method: str, budget: float, seed: int,
             device: str = "cpu", cache: ArtifactCache | None = None,
             array: SystolicArray = EYERISS) -> dict[str, Any]:
    """One compressed network (not cached): per-item test correctness, energies, the
    per-layer breakdown before and after, the loss log."""
    dev = torch.device(device)
    task = task_of(cfg, device, cache or ArtifactCache())
    seed_everything(derive_seed(seed, "energy-training", method))
    teacher = task.teacher(dev)
    model = task.teacher(dev).train()
    for p in model.parameters():
        p.requires_grad_(True)
    geoms = layer_geometries(model.cpu(), task.example_input)
    model.to(dev)
    if method == "projection+mask":
        add_input_masks(model, geoms)
    dense_layers = model_energy_breakdown(model, geoms, array)
    dense = sum(e.total for e in dense_layers)
    target = budget * dense
    batches = task.batches(teacher, cfg.batch_size, derive_seed(seed, "batches"))
    knobs = knobs_of(cfg, method)
    t0 = time.process_time()
    if method == "random":
        g = torch.Generator().manual_seed(derive_seed(seed, "random-mask"))
        ws = weights_of(model, geoms)
        masks = random_masks([w.detach().cpu() for w in ws], weight_costs(model, geoms, array),
                             target, g)
        masks = [m.to(dev) for m in masks]
        apply_masks(ws, masks)
        log: list = []
        weight_step(model, batches, geoms, array, target, target, cfg.steps, 0, knobs, None,
                    fixed_masks=masks, log=log)
        out = {"log": log, "start_energy": dense,
               "final_energy": systolic_energy(model, geoms, array)}
    else:
        out = energy_constrained_training(model, batches, geoms, target, knobs,
                                          use_input_masks=method == "projection+mask",
                                          array=array, select=selector(method, seed),
                                          dev=task.dev_accuracy)
    cpu_s = time.process_time() - t0
    final_layers = model_energy_breakdown(model, geoms, array)
    final = sum(e.total for e in final_layers)
    if final > target * (1 + 1e-9):
        raise AssertionError(f"{method}: energy {final:.6g} over the budget {target:.6g}")
    ok = task.test_correct(model)  # a tensor: the cache loads artifacts with
    # weights_only=True, which refuses NumPy arrays
    dev_acc = task.dev_accuracy(model)
    return {"method": method, "budget": budget, "seed": seed, "correct": ok,
            "accuracy": float(ok.mean()), "dev_accuracy": dev_acc, "lr": knobs.lr,
            "rounds_dev_accuracy": out.get("rounds_dev_accuracy", []),
            "dense_energy": dense, "final_energy": final,
            "energy_ratio": final / dense, "budget_energy": target,
            "dense_layers": [e.as_dict() for e in dense_layers],
            "final_layers": [e.as_dict() for e in final_layers],
            "weights_kept": sum(e.weight_nnz for e in final_layers)
            / sum(e.weight_nnz for e in dense_layers),
            "log": out["log"], "cpu_seconds": cpu_s}


_TASKS: dict = {}


def task_of(cfg: EnergyTrainingConfig, device: str, cache: ArtifactCache):
    """``make_task`` once per process for a data/teacher config (the runs share it)."""
    key = (cfg.dataset, cfg.model, cfg.model_kwargs, cfg.n_train, cfg.n_dev, cfg.n_test,
           cfg.dense_steps, cfg.dense_lr, cfg.batch_size, cfg.data_root, cfg.workers,
           str(device), str(cache.directory))
    if key not in _TASKS:
        _TASKS.clear()
        _TASKS[key] = make_task(cfg, torch.device(device), cache)
    return _TASKS[key]


def cached_compress(cfg: EnergyTrainingConfig, method: str, budget: float, seed: int,
                    device: str = "cpu", cache: ArtifactCache | None = None) -> dict[str, Any]:
    cache = cache or ArtifactCache()
    task = task_of(cfg, device, cache)
    key_cfg = {"cfg": cfg, "method": method, "budget": budget, "seed": seed}
    return cache.get_or_create("energy-training-run", key_cfg,
                               lambda: compress(cfg, method, budget, seed, device, cache),
                               code=[compress], depends_on=[task.teacher_key])


def runs_of(cfg: EnergyTrainingConfig, device: str = "cpu",
            cache: ArtifactCache | None = None) -> list[dict[str, Any]]:
    return [cached_compress(cfg, m, b, s, device, cache)
            for s in cfg.seeds for b in cfg.budgets for m in cfg.methods]


def tune(cfg: EnergyTrainingConfig, grid: tuple = LR_GRID, seed: int = 0, device: str = "cpu",
         cache: ArtifactCache | None = None) -> dict[str, Any]:
    """Equal tuning effort: each method's SGD learning rate from the same ``grid``, at the
    claim budget, one seed, judged by accuracy on the dev split (never the test set); ties
    go to the value nearest ``cfg.lr``; a run that diverges (NaN weights) scores NaN and is
    never chosen. Returns ``{method: {"dev": {lr: acc}, "best": lr}}`` (the tutorial's
    ``method_lr`` and ``TUNING`` record its result)."""
    out: dict[str, Any] = {}
    for m in cfg.methods:
        dev = {}
        for lr in grid:
            c = with_knobs(cfg, lr=lr, method_lr=(), seeds=(seed,),
                           budgets=(cfg.claim_budget,))
            try:
                dev[lr] = cached_compress(c, m, cfg.claim_budget, seed, device,
                                          cache)["dev_accuracy"]
            except ValueError as err:  # the projection refuses NaN weights
                if "NaN" not in str(err):
                    raise
                dev[lr] = float("nan")
        ok = [lr for lr in grid if dev[lr] == dev[lr]]
        best = max(ok, key=lambda lr, dev=dev: (dev[lr], -abs(math.log(lr / cfg.lr))))
        out[m] = {"dev": dev, "best": best}
    return out


#: The second round of tuning (``tune_knob``; its result is ``TUNING["knobs"]``, extended
#: where an optimum sat on an edge), at each method's tuned lr: the budget decay
#: (``decay_fraction``), the schedule knob every gradual method shares (projection, its
#: masked variant, magnitude and energy-aware pruning), the same 5 values for each; and the
#: masks' Adam rate (``mask_lr``), the knob only ``projection+mask`` has. ``random`` keeps
#: its mask fixed from the start, so it has neither.
KNOB_GRIDS = {"decay_fraction": ((0.05, 0.15, 0.3, 0.6, 0.9),
                                 ("projection", "projection+mask", "magnitude",
                                  "energy-aware")),
              "mask_lr": ((0.01, 0.03, 0.1), ("projection+mask",))}


def tune_knob(cfg: EnergyTrainingConfig, knob: str, grid: tuple, methods: tuple,
              seed: int = 0, device: str = "cpu", cache: ArtifactCache | None = None
              ) -> dict[str, Any]:
    """``tune`` for another knob of the config (``decay_fraction``, ``mask_lr``, ...): each
    of ``methods`` at its tuned lr (``method_lr``), at the claim budget, seed ``seed``,
    every value of ``grid``, scored by dev accuracy; ties go to the config's own value, a
    diverged run (NaN) is never chosen. Returns ``{method: {"dev": {v: acc}, "best": v}}``."""
    if not hasattr(cfg, knob) or knob not in {f.name for f in dataclasses.fields(EnergyKnobs)}:
        raise ValueError(f"{knob!r} is not a tunable knob of EnergyTrainingConfig")
    out: dict[str, Any] = {}
    for m in methods:
        dev = {}
        for v in grid:
            c = with_knobs(cfg, **{knob: v}, lr=lr_of(cfg, m), method_lr=(), method_knobs=(),
                           seeds=(seed,), budgets=(cfg.claim_budget,))
            try:
                dev[v] = cached_compress(c, m, cfg.claim_budget, seed, device,
                                         cache)["dev_accuracy"]
            except ValueError as err:
                if "NaN" not in str(err):
                    raise
                dev[v] = float("nan")
        ok = [v for v in grid if dev[v] == dev[v]]
        own = getattr(cfg, knob)
        best = max(ok, key=lambda v, dev=dev: (dev[v], v == own))
        out[m] = {"dev": dev, "best": best}
    return out


def _tag(budget: float) -> str:
    return str(round(100 * budget))


PAIRS = (("projection", "energy-aware"), ("projection", "magnitude"),
         ("projection+mask", "projection"), ("projection", "random"))


def comparison(cfg: EnergyTrainingConfig, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per budget and method: mean accuracy and energy; paired intervals (seeds x test
    items) for each pair of ``PAIRS`` at each budget."""
    by: dict = {}
    for r in runs:
        by.setdefault((r["method"], r["budget"]), []).append(r)
    rows = []
    for (m, b), rs in sorted(by.items(), key=lambda kv: (kv[0][1], METHODS.index(kv[0][0]))):
        rows.append({"method": m, "budget": b, "accuracy": float(np.mean([r["accuracy"]
                                                                           for r in rs])),
                     "energy_ratio": max(r["energy_ratio"] for r in rs),
                     "weights_kept": float(np.mean([r["weights_kept"] for r in rs])),
                     "met_budget": all(r["final_energy"] <= r["budget_energy"] * (1 + 1e-9)
                                       for r in rs), "seeds": len(rs)})
    intervals = {}
    for a, b in PAIRS:
        for budget in cfg.budgets:
            if (a, budget) not in by or (b, budget) not in by:
                continue
            ra = sorted(by[(a, budget)], key=lambda r: r["seed"])
            rb = sorted(by[(b, budget)], key=lambda r: r["seed"])
            iv = paired_bootstrap(np.stack([np.asarray(r["correct"]) for r in ra]),
                                  np.stack([np.asarray(r["correct"]) for r in rb]), seed=0)
            intervals[f"acc_{_slug(a)}_vs_{_slug(b)}_{_tag(budget)}"] = iv
            if budget == cfg.claim_budget:
                intervals[f"acc_{_slug(a)}_vs_{_slug(b)}_claim"] = iv
    return {"rows": rows, "intervals": intervals}


def _slug(method: str) -> str:
    return method.replace("+", "_").replace("-", "_")


def greedy_vs_exact(n_cases: int, seed: int = 0) -> dict[str, Any]:
    """The greedy projection against the exact MILP on random small layers (a conv layer
    with a 3-entry kernel cache and a linear layer, random input masks and budgets)."""
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    rows = []
    for case in range(n_cases):
        model = nn.Sequential(nn.Conv2d(1, 3, 2), nn.Flatten(), nn.Linear(3 * 3 * 3, 2))
        geoms = layer_geometries(model, torch.zeros(1, 1, 4, 4))
        add_input_masks(model, geoms)
        with torch.no_grad():
            model[0].input_mask.copy_((torch.rand(1, 4, 4, generator=g) > 0.25).float())
            for mod in (model[0], model[2]):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g))
        array = SystolicArray(pe_rows=2, kernel_cache_entries=3)
        costs = weight_costs(model, geoms, array)
        ws = [model[0].weight.detach(), model[2].weight.detach()]
        lo = min_energy(costs)
        hi = masks_energy(costs, [torch.ones_like(w, dtype=torch.bool) for w in ws])
        budget = lo + float(torch.rand(1, generator=g)) * (hi - lo)
        total = sum(float((w ** 2).sum()) for w in ws)

        def value(masks, ws=ws):
            return sum(float((w[m] ** 2).sum()) for w, m in zip(ws, masks, strict=True))

        exact = exact_energy_projection(ws, costs, budget)
        row = {"case": case, "weights": sum(w.numel() for w in ws), "exact": value(exact) / total,
               "exact_energy": masks_energy(costs, exact) / budget}
        for name, marginal in (("greedy_marginal", True), ("greedy_upper", False)):
            m = energy_projection_masks(ws, costs, budget, marginal=marginal)
            row[name] = value(m) / total
            row[f"{name}_energy"] = masks_energy(costs, m) / budget
        rows.append(row)
    gaps = [r["exact"] - r["greedy_marginal"] for r in rows]
    return {"rows": rows, "max_gap": float(max(gaps)), "mean_gap": float(np.mean(gaps)),
            "all_feasible": all(r["greedy_marginal_energy"] <= 1 + 1e-9
                                and r["greedy_upper_energy"] <= 1 + 1e-9 for r in rows)}


def run(cfg: EnergyTrainingConfig, device: str = "cpu", cache: ArtifactCache | None = None
        ) -> dict[str, Any]:
    """The whole experiment."""
    cache = cache or ArtifactCache()
    task = task_of(cfg, device, cache)
    runs = runs_of(cfg, device, cache)
    return {"runs": runs, "table": comparison(cfg, runs),
            "exact": greedy_vs_exact(cfg.exact_cases),
            "dense": task.teacher_info}


def metrics_of(out: dict[str, Any]) -> dict[str, Any]:
    """The record's metrics."""
    m: dict[str, Any] = {"dense_test_accuracy": out["dense"]["test_accuracy"]}
    for row in out["table"]["rows"]:
        tag = f"{_slug(row['method'])}_{_tag(row['budget'])}"
        m[f"acc_{tag}"] = row["accuracy"]
        m[f"energy_{tag}"] = row["energy_ratio"]
        m[f"met_{tag}"] = float(row["met_budget"])
    for prefix, iv in out["table"]["intervals"].items():
        m.update(iv.as_metrics(prefix))
    m["all_budgets_met"] = float(all(r["met_budget"] for r in out["table"]["rows"]))
    m["greedy_exact_max_gap"] = out["exact"]["max_gap"]
    m["greedy_all_feasible"] = float(out["exact"]["all_feasible"])
    return m


def layer_table(run_out: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-layer energy (share of the dense total) before and after one run."""
    dense = sum(e["total"] for e in run_out["dense_layers"])
    return [{"layer": d["name"], "kind": d["kind"],
             "dense: weights": d["weight_nnz"], "after: weights": f["weight_nnz"],
             "dense: inputs": d["input_nnz"], "after: inputs": f["input_nnz"],
             "dense: energy %": 100 * d["total"] / dense,
             "after: energy %": 100 * f["total"] / dense,
             "after: MAC %": 100 * f["computation"] / dense,
             "after: data access %": 100 * (f["total"] - f["computation"]) / dense}
            for d, f in zip(run_out["dense_layers"], run_out["final_layers"], strict=True)]


def _claim(id: str, a: str, b: str, claim: str, paper: str) -> Claim:
    """A claim on the paired accuracy difference ``a - b`` at the config's claim budget
    (the lowest: 12% of dense at tutorial scale), against the paper's +0.5 points."""
    return Claim.interval("energy_training", id, f"{claim} (at the claim budget)",
                          paper=paper, prefix=f"acc_{_slug(a)}_vs_{_slug(b)}_claim",
                          paper_effect=0.005, unit="accuracy difference", percent=True,
                          section="et-comparison")


CLAIMS = [
    _claim("projection-vs-energy-aware", "projection", "energy-aware",
           "The weighted sparse projection is more accurate than energy-aware pruning at the "
           "same modelled energy",
           "higher accuracy than energy-aware pruning at the same or lower energy (LeNet-5 "
           "MNIST, AlexNet, SqueezeNet ImageNet)"),
    _claim("projection-vs-magnitude", "projection", "magnitude",
           "The weighted sparse projection is more accurate than magnitude pruning matched to "
           "the same modelled energy",
           "higher accuracy than magnitude-based pruning at the same or lower energy"),
    _claim("input-mask", "projection+mask", "projection",
           "Input masks add accuracy at the same energy",
           "input masking lowers the energy further at little accuracy cost"),
]
