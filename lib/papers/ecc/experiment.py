"""The ECC chapter's experiment: configs per scale, the cost-model fit on this platform,
the baselines, every method at every budget and seed, one interleaved measurement of all
extracted networks, and the paired comparison.

Baselines, at the same budgets and the same number of training steps:

* **NetAdapt-style** greedy search (Yang et al., ECCV 2018, as the official ECC code's
  ``net_adapt.py``): each iteration lowers the target cost by ``netadapt_decay``; for each
  layer, the widest width meeting it is found with the same fitted cost model, the weakest
  input channels are cut, the candidate is fine-tuned briefly and scored on held-out
  training-distribution data (the dev split); the best candidate is kept. When the
  measured cost meets the budget, the rest of the steps fine-tune it (long-term).
* **Uniform width scaling**: every hidden width times one multiplier, the largest that
  meets the budget, weakest channels cut, then fine-tuned for all the steps.
* **Positive control** (``first-layer``): the budget met by narrowing the first layer
  alone, a deliberately poor allocation: the comparison must be able to tell it apart.
* **Ablation** (``ecc-projection``): ECC with the prox replaced by keeping exactly
  ``floor(s_j)`` channels and no dual ``y``, so that the widths follow the cost model alone,
  without feedback from the loss.

Every compared network is physically extracted (``lib.sparse.extract_input_pruned``) and
its latency measured on this device, all of them interleaved in one run
(``lib.energy.measure_interleaved``); costs are reported relative to the dense network
measured in the same rounds.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lib.core import ArtifactCache, ScaleConfigs, derive_seed, seed_everything, with_knobs
from lib.core.claims import Claim
from lib.core.limits import limit_steps
from lib.core.stats import paired_bootstrap
from lib.core.train import train_loop
from lib.energy.bilinear import compare_cost_models, fit_cost_model
from lib.energy.counts import layer_costs
from lib.energy.measure import energy_status, measure_interleaved
from lib.sparse.input_channels import (
    extract_input_pruned,
    input_channel_norms,
    strongest_channels,
    width_boundaries,
    zero_input_channels,
)

from .method import (
    ECCKnobs,
    clip_gradients,
    cosine_lr,
    distill_loss,
    ecc_compress,
    hold_widths,
)
from .task import Task, latency_samples, make_task, timing

METHODS = ("ecc", "netadapt", "uniform")
CONTROLS = ("first-layer", "ecc-projection")


@dataclass(frozen=True)
class ECCConfig:
    """Knobs of the chapter (the official code's defaults where it has them)."""

    model: str                      # lenet5_like | mobilenet_v1 | alexnet
    model_kwargs: tuple             # lenet5_like widths, as ((name, value), ...)
    dataset: str                    # synthetic_digits | imagenet
    n_train: int                    # synthetic digits only
    n_dev: int
    n_test: int
    dense_steps: int                # the dense model's training (cached, shared)
    dense_lr: float
    pretrained: str                 # full scale: dense weights under the data root, or ""
    batch_size: int
    steps: int                      # training steps of every method (compress + fine-tune)
    lr: float
    momentum: float
    weight_decay: float
    distill: float                  # distillation weight (official 0.5), every method
    grad_clip: float                # gradient-norm clip of every method's training steps
    s_lr: float                     # ECC [pslr]
    s_grad_clip: float              # ECC [psgrad_clip]
    rho_y: float                    # ECC [rho_y]
    rho_z: float                    # ECC [rho_z] (cost in units of the dense cost)
    budgets: tuple[float, ...]      # target cost, fraction of the dense network's
    seeds: tuple[int, ...]
    methods: tuple[str, ...]
    controls: tuple[str, ...]
    control_budget: float           # the budget of the positive control and the ablation
    netadapt_decay: float           # target decay per NetAdapt iteration (official 0.96)
    netadapt_longterm: float        # fraction of the steps for NetAdapt's final fine-tune
    holdout: int                    # dev images NetAdapt scores its candidates on
    eval_every: int                 # dev accuracy every this many fine-tuning steps
    latency_batch: int              # images per timed forward pass
    latency_samples: int            # random-width variants the cost models are fitted on
    latency_group: int              # variants measured interleaved with the dense network
    sample_seed: int
    rounds: int                     # interleaved rounds of a measurement
    number: int                     # forward passes per timed block
    warmup: int
    threads: int                    # intra-op threads while timing (fixed)
    clock: str                      # "wall" latency, or "cpu": the timing thread's CPU time
                                    # (one thread on a shared CPU: see lib.energy.measure)
    check_rounds: int               # rounds of the in-run budget checks
    test_fraction: float            # held-out share of the latency samples
    workers: int                    # data-loading processes (full scale)
    data_root: str                  # "" = lib.vision.data_root()

    def __post_init__(self):
        bad = [b for b in self.budgets + (self.control_budget,) if not 0 < b < 1]
        if bad:
            raise ValueError(f"budgets are fractions of the dense cost in (0, 1), got {bad}")
        unknown = sorted(set(self.methods) - set(METHODS)) + sorted(
            set(self.controls) - set(CONTROLS))
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; valid: {METHODS + CONTROLS}")


_TUTORIAL = ECCConfig(
    model="lenet5_like", model_kwargs=(), dataset="synthetic_digits", n_train=20000,
    n_dev=2000, n_test=5000, dense_steps=3000, dense_lr=0.05, pretrained="", batch_size=64,
    steps=500, lr=0.01, momentum=0.9, weight_decay=5e-4, distill=0.5, grad_clip=5.0,
    s_lr=3.0, s_grad_clip=1.0, rho_y=10.0, rho_z=10.0, budgets=(0.7, 0.5, 0.3), seeds=(0, 1, 2),
    methods=METHODS, controls=("first-layer",), control_budget=0.5, netadapt_decay=0.85,
    netadapt_longterm=0.5, holdout=1000, eval_every=50, latency_batch=64,
    latency_samples=150, latency_group=6, sample_seed=0, rounds=5, number=3, warmup=2,
    threads=1, clock="cpu", check_rounds=3, test_fraction=0.2, workers=0, data_root="")

CONFIGS = ScaleConfigs(
    smoke=with_knobs(_TUTORIAL, n_train=600, n_dev=100, n_test=200, dense_steps=60, steps=30,
                     budgets=(0.5,), seeds=(0,), controls=(), holdout=100, eval_every=10,
                     latency_batch=16, latency_samples=16, latency_group=8, rounds=2,
                     number=1, warmup=1, check_rounds=1),
    tutorial=_TUTORIAL,
    full=with_knobs(  # MobileNet v1 on ImageNet, latency on the GPU in use
        _TUTORIAL, model="mobilenet_v1", dataset="imagenet", dense_steps=450_000,
        dense_lr=0.1, batch_size=128, steps=100_000, lr=1e-3, weight_decay=1e-4,
        budgets=(0.7, 0.5, 0.3), seeds=(0,), controls=(), holdout=10_000, eval_every=5000,
        latency_batch=128, latency_samples=2000, latency_group=10, rounds=7, number=10,
        warmup=10, threads=8, clock="wall", check_rounds=5, workers=8),
)

#: The tuning done for the tutorial (seed 0, budget 30%, dev accuracy at the end of the run;
#: one knob per method, the same effort for ECC and NetAdapt): the config keeps the best.
TUNING = {
    "ecc rho_z": {"grid": [10.0, 100.0], "dev_accuracy": [0.9305, 0.9295], "chosen": 10.0},
    "netadapt_decay": {"grid": [0.85, 0.7], "dev_accuracy": [0.940, 0.933], "chosen": 0.85},
}

#: The paper's full-scale setups (``setup_config("full", name)``).
SETUPS: dict[str, dict[str, Any]] = {
    "default": {},
    "mobilenet-imagenet": {},
    "alexnet-imagenet": dict(model="alexnet", pretrained="pretrained/alexnet-imagenet.pth",
                             dense_steps=0, lr=1e-4),
}

#: What the paper reports (Sec. 5), for the chapter's comparison (no numbers we could not
#: check are quoted: see the chapter).
PAPER = {
    "platforms": "Jetson TX2 (energy from its power rails) and a desktop GPU",
    "networks": "AlexNet and MobileNet on ImageNet, ERFNet on Cityscapes",
    "baselines": "magnitude-based channel pruning, NetAdapt, AMC",
    "claim": "higher accuracy than the baselines at the same or lower energy",
}


def setup_config(scale: str, setup: str = "default", **knobs: Any) -> ECCConfig:
    """``CONFIGS[scale]`` with a named full-scale setup's knobs, then ``knobs``."""
    if setup not in SETUPS:
        raise ValueError(f"unknown setup {setup!r}; valid setups are {', '.join(SETUPS)}")
    if setup != "default" and scale != "full":
        raise ValueError(f"setup {setup!r} is a full-scale setup; use scale='full'")
    return with_knobs(CONFIGS[scale], **{**SETUPS[setup], **knobs})


def knobs_of(cfg: ECCConfig) -> ECCKnobs:
    return ECCKnobs(lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                    distill=cfg.distill, grad_clip=cfg.grad_clip, s_lr=cfg.s_lr,
                    s_grad_clip=cfg.s_grad_clip,
                    rho_y=cfg.rho_y, rho_z=cfg.rho_z)


# --------------------------------------------------------------------------- cost models
def cost_fit(cfg: ECCConfig, task: Task, cache: ArtifactCache | None = None) -> dict[str, Any]:
    """The latency samples of this platform and the three cost models fitted on them:
    held-out errors of each, and the bilinear model fitted on all samples (the one the
    methods use). Costs are in units of the dense network's latency."""
    samples = latency_samples(cfg, task.family, task.latency_input, cache)
    widths, ratio = np.asarray(samples["widths"]), np.asarray(samples["ratio"])
    layer_macs, width_macs = mac_constants(task.family)
    comparison = compare_cost_models(widths, ratio, task.family.upper, layer_macs=layer_macs,
                                     width_macs=width_macs, test_fraction=cfg.test_fraction,
                                     seed=cfg.sample_seed)
    full = fit_cost_model("bilinear", widths, ratio, task.family.upper)
    return {"samples": samples, "comparison": comparison, "model": full,
            "layer_macs": layer_macs, "width_macs": width_macs}


def mac_constants(family) -> tuple[list[float], list[float]]:
    """The dense network's MACs per image: ``M_j`` of each dense layer (bilinear in its two
    widths) and ``D_j`` of the depthwise convolutions, which follow width ``j`` alone."""
    from lib.sparse.input_channels import _is_dense, _leaves

    dense = family.build(family.upper)
    x1 = torch.zeros(1, *family.input_shape)
    costs = layer_costs(dense, x1)
    counted = [i for i, leaf in enumerate(_leaves(dense))
               if isinstance(leaf, (nn.Conv2d, nn.Linear))]
    owner = {i: b.index for b in width_boundaries(dense, x1) for i in b.between}
    layer_macs, width_macs = [], [0.0] * len(family.upper)
    for i, c in zip(counted, costs, strict=True):
        if _is_dense(_leaves(dense)[i]):
            layer_macs.append(float(c.macs))
        else:
            width_macs[owner[i]] += float(c.macs)
    return layer_macs, width_macs


def predicted_ratio(cost_model, widths) -> float:
    """Predicted cost of a width vector relative to the dense one's prediction."""
    upper = np.asarray(cost_model.upper)
    return float(cost_model.predict(np.asarray(widths))[0] / cost_model.predict(upper)[0])


# --------------------------------------------------------------------------- helpers
def dense_network(task: Task, device: torch.device) -> nn.Sequential:
    net = task.family.build(task.family.upper).to(device)
    net.load_state_dict(task.dense_state)
    return net


def ratio_measurer(task: Task, dense: nn.Module, cfg: ECCConfig, seed: int):
    """``measure(model)``: latency of the extracted ``model`` over the dense network's,
    measured interleaved (``check_rounds`` rounds)."""
    counter = {"n": 0}

    def measure(model: nn.Module) -> float:
        small = extract_input_pruned(model, task.example_input)
        counter["n"] += 1
        stats = measure_interleaved({"dense": dense, "net": small}, task.latency_input,
                                    **timing(cfg, cfg.check_rounds), threads=cfg.threads,
                                    clock=cfg.clock,
                                    seed=derive_seed(seed, "check", counter["n"]))
        return stats["net"].median_s / stats["dense"].median_s

    return measure


@torch.no_grad()
def cut_to_widths(model: nn.Module, boundaries, widths) -> list[torch.Tensor]:
    """Keep the strongest input channels at each boundary to reach ``widths`` (hidden
    widths); returns the kept masks (official ``filter_projection``)."""
    keeps = []
    for b, w in zip(boundaries, widths, strict=True):
        keep = strongest_channels(input_channel_norms(model, b), int(w))
        zero_input_channels(model, b, keep)
        keeps.append(keep)
    return keeps


def current_keep(model: nn.Module, boundaries) -> list[torch.Tensor]:
    return [input_channel_norms(model, b, include_depthwise=False) > 0 for b in boundaries]


def finetune(model: nn.Module, teacher: nn.Module, task: Task, boundaries, keep, steps: int,
             cfg: ECCConfig, *, first_step: int = 0, lr: float | None = None,
             decay: bool = True, eval_every: int = 0, desc: str = "fine-tune",
             ckpt_dir=None, run_key=None) -> dict[str, Any]:
    """``steps`` SGD steps on the distillation + CE loss with the removed channels held at
    zero (batches ``first_step ..``); cosine-decayed lr when ``decay``."""
    base = cfg.lr if lr is None else lr
    opt = torch.optim.SGD(model.parameters(), lr=base, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)

    def step_fn(step: int) -> dict[str, float]:
        if decay:
            for group in opt.param_groups:
                group["lr"] = cosine_lr(base, step, 0, steps)
        model.train()
        x, y = task.batch(first_step + step)
        opt.zero_grad(set_to_none=True)
        loss = distill_loss(model, teacher, x, y, cfg.distill)
        loss.backward()
        clip_gradients(model, cfg.grad_clip)
        opt.step()
        hold_widths(model, boundaries, keep)
        return {"loss": float(loss.detach())}

    eval_fn = (lambda s: {"dev_accuracy": task.dev_accuracy(model)}) if eval_every else None
    res = train_loop(step_fn, steps, state={"model": model, "opt": opt}, ckpt_dir=ckpt_dir,
                     run_key=run_key, ckpt_every=max(1, steps // 10) if ckpt_dir else 0,
                     eval_fn=eval_fn, eval_every=eval_every, log_every=max(1, steps // 20),
                     desc=desc, show_progress=False)
    return {"evals": [{**e, "step": e["step"] + first_step} for e in res.evals],
            "steps": res.steps}


# --------------------------------------------------------------------------- methods
def uniform_widths(cost_model, upper, target: float, only: tuple[int, ...] | None = None
                   ) -> list[int]:
    """Hidden widths ``max(1, round(m u_j))`` of the largest multiplier ``m`` predicted
    within ``target`` (bisection); ``only`` restricts the scaling to some hidden widths."""
    hidden = list(range(1, len(upper) - 1))
    scaled = hidden if only is None else [hidden[i] for i in only]

    def widths(m: float) -> list[int]:
        w = list(upper)
        for j in scaled:
            w[j] = max(1, int(round(m * upper[j])))
        return w

    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if predicted_ratio(cost_model, widths(mid)) <= target:
            lo = mid
        else:
            hi = mid
    return widths(lo)[1:-1]


def scaled_compress(model, teacher, task, boundaries, cost_model, budget, cfg, measure,
                    only=None, eval_every=0) -> dict[str, Any]:
    """Uniform width scaling (or, with ``only``, scaling of some layers): the widest such
    widths whose extracted network measures within budget, then ``cfg.steps`` of
    fine-tuning."""
    target, measurements = budget, []
    base_state = copy.deepcopy(model.state_dict())
    for _ in range(limit_steps(8)):
        model.load_state_dict(base_state)
        widths = uniform_widths(cost_model, cost_model.upper, target, only)
        keep = cut_to_widths(model, boundaries, widths)
        measured = measure(model)
        measurements.append({"target": target, "measured": measured, "widths": widths})
        if measured <= budget:
            break
        target *= budget / measured
    curve = finetune(model, teacher, task, boundaries, keep, cfg.steps, cfg,
                     eval_every=eval_every, desc="uniform")
    return {"measurements": measurements, "met_budget": measurements[-1]["measured"] <= budget,
            "evals": curve["evals"], "search_steps": 0}


def netadapt_compress(model, teacher, task, boundaries, cost_model, budget, cfg, measure,
                      eval_every=0) -> dict[str, Any]:
    """The NetAdapt-style greedy search (see the module docstring), then long-term
    fine-tuning with the steps left."""
    upper = list(cost_model.upper)
    widths = list(upper)
    n_layers = len(boundaries)
    iters_est = max(1, math.ceil(math.log(budget) / math.log(cfg.netadapt_decay)))
    search_steps = int(round(cfg.steps * (1 - cfg.netadapt_longterm)))
    st = max(1, search_steps // (iters_est * n_layers))
    used, target, history, measurements = 0, cfg.netadapt_decay, [], []
    keep = current_keep(model, boundaries)
    for it in range(limit_steps(4 * iters_est + 20)):
        current = predicted_ratio(cost_model, widths)
        if current <= budget:
            measured = measure(model)
            measurements.append({"iteration": it, "predicted": current, "measured": measured})
            if measured <= budget:
                break
        best = None
        for k in range(n_layers):
            j = k + 1
            w = list(widths)
            while w[j] > 1 and predicted_ratio(cost_model, w) > target:
                w[j] -= 1
            if predicted_ratio(cost_model, w) > target:
                continue  # this layer alone cannot reach the target
            cand = copy.deepcopy(model)
            cand_keep = list(keep)
            cand_keep[k] = strongest_channels(input_channel_norms(cand, boundaries[k]), w[j])
            hold_widths(cand, boundaries, cand_keep)
            finetune(cand, teacher, task, boundaries, cand_keep, st, cfg, first_step=used,
                     decay=False, desc=f"netadapt candidate {k}")
            used += limit_steps(st)
            score = task.holdout_accuracy(cand)
            if best is None or score > best[0]:
                best = (score, k, w, cand, cand_keep)
        if best is None:
            break  # no layer can be narrowed further
        score, k, w, cand, cand_keep = best
        model.load_state_dict(cand.state_dict())
        widths, keep = w, cand_keep
        history.append({"iteration": it, "layer": k, "widths": widths[1:-1],
                        "holdout_accuracy": score, "predicted": predicted_ratio(cost_model,
                                                                                widths)})
        target *= cfg.netadapt_decay
    met = bool(measurements) and measurements[-1]["measured"] <= budget
    curve = finetune(model, teacher, task, boundaries, keep, max(0, cfg.steps - used), cfg,
                     first_step=used, eval_every=eval_every, desc="netadapt long-term")
    return {"history": history, "measurements": measurements, "met_budget": met,
            "evals": curve["evals"], "search_steps": used, "steps_per_candidate": st}


def compress(cfg: ECCConfig, method: str, budget: float, seed: int, device: str = "cpu",
             cache: ArtifactCache | None = None, ckpt_dir: Path | None = None,
             run_key: str | None = None) -> dict[str, Any]:
    """One method at one budget from the dense model of ``seed``: the masked weights, the
    widths, per-item test correctness and the run's own budget checks."""
    device = torch.device(device)
    task = make_task(cfg, seed, device, cache)
    fit = cost_fit(cfg, task, cache)
    cost_model = fit["model"]
    seed_everything(derive_seed(seed, method, budget))
    model = dense_network(task, device)
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    boundaries = width_boundaries(model, task.example_input)
    measure = ratio_measurer(task, teacher, cfg, derive_seed(seed, method, budget))
    start = time.perf_counter()
    if method in ("ecc", "ecc-projection"):
        knobs = knobs_of(cfg)
        if method == "ecc-projection":
            knobs = ECCKnobs(**{**knobs.__dict__, "prox": "projection"})
        out = ecc_compress(model, teacher, task.batch, boundaries, list(task.family.upper),
                           cost_model, budget, cfg.steps, knobs, measure,
                           eval_fn=lambda s: {"dev_accuracy": task.dev_accuracy(model)},
                           eval_every=cfg.eval_every, ckpt_dir=ckpt_dir, run_key=run_key,
                           desc=method, show_progress=False)
    elif method == "netadapt":
        out = netadapt_compress(model, teacher, task, boundaries, cost_model, budget, cfg,
                                measure, eval_every=cfg.eval_every)
    elif method == "uniform":
        out = scaled_compress(model, teacher, task, boundaries, cost_model, budget, cfg,
                              measure, eval_every=cfg.eval_every)
    elif method == "first-layer":
        out = scaled_compress(model, teacher, task, boundaries, cost_model, budget, cfg,
                              measure, only=(0,), eval_every=cfg.eval_every)
    else:
        raise ValueError(f"unknown method {method!r}; valid: {METHODS + CONTROLS}")
    correct = task.correct(model)
    widths = [int(k.sum()) for k in current_keep(model, boundaries)]
    return {"method": method, "budget": budget, "seed": seed, "widths": widths,
            "accuracy": float(correct.mean()), "correct": correct.to(torch.uint8),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "met_budget_in_run": bool(out.get("met_budget")),
            "measurements": out.get("measurements", []), "evals": out.get("evals", []),
            "history": out.get("history", []), "stopped_at": out.get("stopped_at"),
            "search_steps": out.get("search_steps", out.get("stopped_at")),
            "dense_accuracy": task.dense_info["test_accuracy"],
            "seconds": time.perf_counter() - start}


def cached_compress(cfg: ECCConfig, method: str, budget: float, seed: int,
                    device: str = "cpu", cache: ArtifactCache | None = None) -> dict[str, Any]:
    """``compress`` through the artifact cache, built on the dense model's artifact; at
    full scale ECC checkpoints and resumes."""
    cache = cache or ArtifactCache()
    task = make_task(cfg, seed, torch.device(device), cache)
    key = {"config": cfg, "method": method, "budget": budget, "seed": seed}
    checkpoint = cfg.dataset != "synthetic_digits"

    def build(ckpt_dir: Path, run_key: str) -> dict[str, Any]:
        if checkpoint:
            return compress(cfg, method, budget, seed, device, cache, ckpt_dir, run_key)
        return compress(cfg, method, budget, seed, device, cache)

    return cache.get_or_train("ecc-run", key, build, depends_on=[task.dense_key])


# --------------------------------------------------------------------------- evaluation
def extracted(run: dict[str, Any], task: Task, device: torch.device) -> nn.Sequential:
    net = task.family.build(task.family.upper).to(device)
    net.load_state_dict(run["state_dict"])
    return extract_input_pruned(net, task.example_input)


def runs_of(cfg: ECCConfig, device: str = "cpu", cache: ArtifactCache | None = None
            ) -> list[dict[str, Any]]:
    """Every method at every budget and seed, plus the controls at ``control_budget``."""
    runs = []
    for seed in cfg.seeds:
        for budget in cfg.budgets:
            for m in cfg.methods:
                runs.append(cached_compress(cfg, m, budget, seed, device, cache))
        for m in cfg.controls:
            runs.append(cached_compress(cfg, m, cfg.control_budget, seed, device, cache))
    return runs


def measure_all(cfg: ECCConfig, runs: list[dict[str, Any]], task: Task,
                device: str = "cpu") -> dict[str, Any]:
    """All extracted networks and the dense one, timed interleaved in one run: latency of
    each relative to the dense network, and absolute medians and spreads."""
    dev = torch.device(device)
    nets = {"dense": dense_network(task, dev)}
    for i, r in enumerate(runs):
        nets[f"run{i}"] = extracted(r, task, dev)
    stats = measure_interleaved(nets, task.latency_input, **timing(cfg), threads=cfg.threads,
                                clock=cfg.clock, seed=derive_seed(cfg.sample_seed, "final"))
    ref = stats["dense"].median_s
    return {"dense": stats["dense"].as_dict(),
            "ratio": [stats[f"run{i}"].median_s / ref for i in range(len(runs))],
            "median_s": [stats[f"run{i}"].median_s for i in range(len(runs))],
            "relative_spread": [stats[f"run{i}"].relative_spread for i in range(len(runs))],
            "energy": energy_status(dev).__dict__}


def comparison(cfg: ECCConfig, runs: list[dict[str, Any]], measured: dict[str, Any]
               ) -> dict[str, Any]:
    """Per budget and method: mean accuracy, measured cost, budget met; paired intervals of
    ECC minus each baseline (bootstrap over seeds and test items)."""
    rows, intervals = [], {}
    by = {}
    for r, ratio in zip(runs, measured["ratio"], strict=True):
        by.setdefault((r["method"], r["budget"]), []).append((r, ratio))
    for (m, b), items in by.items():
        rows.append({"method": m, "budget": b,
                     "accuracy": float(np.mean([r["accuracy"] for r, _ in items])),
                     "measured_cost": float(np.mean([q for _, q in items])),
                     "max_measured_cost": float(np.max([q for _, q in items])),
                     "met_budget": all(q <= b for _, q in items),
                     "widths": [r["widths"] for r, _ in items], "seeds": len(items)})

    def matrix(m: str, b: float) -> np.ndarray:
        items = sorted(by[(m, b)], key=lambda t: t[0]["seed"])
        return np.stack([t[0]["correct"].numpy().astype(np.float64) for t in items])

    pairs = [("netadapt", b) for b in cfg.budgets] + [("uniform", b) for b in cfg.budgets]
    pairs += [(c, cfg.control_budget) for c in cfg.controls]
    for other, b in pairs:
        if ("ecc", b) in by and (other, b) in by:
            iv = paired_bootstrap(matrix("ecc", b), matrix(other, b))
            intervals[f"acc_ecc_vs_{other.replace('-', '_')}_{round(100 * b)}"] = iv
    if ("uniform", cfg.control_budget) in by and ("first-layer", cfg.control_budget) in by:
        intervals[f"acc_uniform_vs_first_layer_{round(100 * cfg.control_budget)}"] = (
            paired_bootstrap(matrix("uniform", cfg.control_budget),
                             matrix("first-layer", cfg.control_budget)))
    return {"rows": rows, "intervals": intervals}


def fit_interval(fit: dict[str, Any]):
    """Paired interval of the held-out relative error, linear-in-width minus bilinear."""
    err = fit["comparison"]["errors"]
    return paired_bootstrap(err["linear"][None, :], err["bilinear"][None, :])


def run(cfg: ECCConfig, device: str = "cpu", cache: ArtifactCache | None = None
        ) -> dict[str, Any]:
    """The whole experiment: the cost-model fit, every run, one interleaved measurement."""
    cache = cache or ArtifactCache()
    task = make_task(cfg, cfg.seeds[0], torch.device(device), cache)
    fit = cost_fit(cfg, task, cache)
    runs = runs_of(cfg, device, cache)
    measured = measure_all(cfg, runs, task, device)
    table = comparison(cfg, runs, measured)
    return {"fit": fit, "runs": runs, "measured": measured, "table": table,
            "dense_accuracy": {s: make_task(cfg, s, torch.device(device), cache).dense_info
                               for s in cfg.seeds}}


def metrics_of(out: dict[str, Any]) -> dict[str, Any]:
    """The record's metrics: fit errors, per-method accuracy and cost, the intervals."""
    m: dict[str, Any] = {}
    for kind, err in out["fit"]["comparison"]["errors"].items():
        m[f"heldout_rel_error_{kind}"] = float(np.mean(err))
    m.update(fit_interval(out["fit"]).as_metrics("rel_error_linear_vs_bilinear"))
    for row in out["table"]["rows"]:
        tag = f"{row['method'].replace('-', '_')}_{round(100 * row['budget'])}"
        m[f"acc_{tag}"] = row["accuracy"]
        m[f"cost_{tag}"] = row["measured_cost"]
        m[f"met_{tag}"] = float(row["met_budget"])
    for prefix, iv in out["table"]["intervals"].items():
        m.update(iv.as_metrics(prefix))
    m["dense_latency_ms"] = 1e3 * out["measured"]["dense"]["median_s"]
    m["dense_latency_relative_spread"] = out["measured"]["dense"]["relative_spread"]
    return m


# --------------------------------------------------------------------------- claims
CLAIMS = [
    Claim.interval("ecc", f"ecc-vs-netadapt-{round(100 * b)}",
                   f"ECC is more accurate than a NetAdapt-style greedy search at the same "
                   f"measured cost ({round(100 * b)}% of the dense latency)",
                   paper="higher accuracy than NetAdapt and AMC at the same or lower energy "
                         "(AlexNet, MobileNet on ImageNet; Jetson TX2, GPU)",
                   prefix=f"acc_ecc_vs_netadapt_{round(100 * b)}", paper_effect=0.005,
                   unit="accuracy difference", percent=True, section="ecc-comparison")
    for b in (0.7, 0.5, 0.3)
] + [
    Claim.interval("ecc", "ecc-vs-uniform-30",
                   "ECC is more accurate than uniform width scaling at 30% of the dense "
                   "latency", paper="(implied: the paper compresses per layer, not uniformly)",
                   prefix="acc_ecc_vs_uniform_30", paper_effect=0.005,
                   unit="accuracy difference", percent=True, section="ecc-comparison"),
    Claim.interval("ecc", "bilinear-vs-linear",
                   "The bilinear model predicts held-out measured cost better than a model "
                   "linear in the widths",
                   paper="the bilinear model fits measured energy closely (Sec. 3)",
                   prefix="rel_error_linear_vs_bilinear", paper_effect=0.01,
                   unit="held-out relative error, linear minus bilinear", percent=True,
                   section="ecc-fit"),
]
