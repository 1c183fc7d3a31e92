r"""Sparsity-quantization joint learning under a model-size budget (Yang et al., CVPR 2020).

**Problem.** Compress a trained network to at most ``S`` bits by pruning *and* quantizing,
with no hand-set per-layer ratios:

.. math::

    \min_W L(W) \quad\text{s.t.}\quad \sum_j b_j \|W_j\|_0 \le S,\qquad
    W_j \in \mathcal{Q}_{b_j},\ b_j \in \{1, \dots, 8\},

where layer ``j``'s nonzeros take at most ``2^{b_j}`` values (a k-means codebook plus the
zero, which a sparse format does not store). Only conv/linear weights count, as in the
paper; the compression ratio is ``32 N / S`` against the dense float32 model.

**ADMM** splits the constraint between ``W`` (sparse, trained) and a quantized duplicate
``V`` with a scaled dual ``U``; each step below is one function of this module:

1. *W-step* (``admm_w_step``): an SGD step on ``L(W)``, then the proximal pull of
   ``(rho / 2) |W - V + U|^2``: ``W <- (W + beta (V - U)) / (1 + beta)``, ``beta = lr rho``.
2. *Sparse projection* (``sparse_projection``, every ``proj_every`` steps): project ``W``
   onto ``{sum_j b_j |W_j|_0 <= S}`` with the current bits: a 0/1 knapsack, greedy by
   ``w^2 / b_j``.
3. *V-step* (``quantization_projection``, every ``dual_every`` steps): quantize ``W + U``
   on the support of ``W``: per layer and candidate ``b``, 1-D k-means with ``2^b``
   centres and a fixed 0 gives the distortion ``D_j(b)``; the bits minimise
   ``sum_j D_j(b_j)`` s.t. ``sum_j b_j nnz_j <= S`` (a multiple-choice knapsack).
4. *Dual update*: ``U <- U + W - V``.

The final model is ``W`` quantized with the final bits; its size ``sum_j b_j nnz_j`` is at
most ``S``. Baselines at the same budget reuse the same loop: *prune-only* (values stay
float32: the projection with ``b_j = 32``, no V-step), *quantize-only* (every layer the same
``b``, plain k-means of ``2^b`` values, no pruning; ratio ``32 / b``) and
*prune-then-quantize* (prune at a fixed ``b``, then quantize the fixed support to ``b``).
Optional distillation adds ``T * CE(softmax(teacher / T), student / T)`` with the dense
model as teacher (the official code's ``--kdtemp``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lib.core import ArtifactCache, IndexBatches, ScaleConfigs, derive_seed, seed_everything
from lib.core.claims import Claim
from lib.core.train import train_loop
from lib.quant import (
    allocate_bits,
    kmeans_quantize,
    kmeans_quantize_all_bits,
    model_size_bits,
    multiple_choice_knapsack,
)
from lib.quant.admm import ADMMState, proximal_pull
from lib.sparse import prunable_layers, weighted_sparse_masks
from lib.vision import StepBatches, build_model, digits_images, vision_dataset

METHODS = ("joint", "prune-only", "quantize-only", "prune-then-quantize")


@dataclass(frozen=True)
class PruneQuantConfig:
    """Knobs of the chapter (defaults of the official code where it has them)."""

    model: str                     # small_cnn | lenet5 | resnet20 | resnet50 | alexnet
    dataset: str                   # digits | mnist | cifar10 | imagenet
    image_size: int                # digits only (upsampled 8x8 digits)
    channels: tuple[int, int]      # small_cnn only
    hidden: int                    # small_cnn only
    batch_size: int
    pretrain_epochs: int           # the dense model (cached); 0: start from `pretrained`
    pretrain_lr: float
    pretrained: str                # path to a dense state dict, or "" (train it)
    epochs: int                    # compression epochs of every method
    lr: float                      # cosine-decayed to 0
    momentum: float
    weight_decay: float
    rho: float                     # ADMM penalty
    initial_bits: int              # bits of the first sparse projection (before a V-step)
    candidate_bits: tuple[int, ...]
    bit_allocation: str            # exact | greedy (the paper's) multiple-choice knapsack
    kmeans_bins: int               # k-means exact up to this many runs per sign
    proj_every: int                # steps between sparse projections (0: once an epoch)
    dual_every: int                # steps between V-step + dual update (0: once an epoch)
    kd_temperature: float          # distillation from the dense model; 0: off
    budgets: tuple[float, ...]     # target compression ratios vs dense float32
    ptq_bits: int                  # the fixed bit-width of prune-then-quantize
    quantize_only_bits: tuple[int, ...]
    methods: tuple[str, ...]
    workers: int                   # data-loading processes (full scale)
    data_root: str                 # "" = lib.vision.data_root()


CONFIGS = ScaleConfigs(
    smoke=PruneQuantConfig(
        model="small_cnn", dataset="digits", image_size=16, channels=(8, 16), hidden=32,
        batch_size=64, pretrain_epochs=4, pretrain_lr=0.05, pretrained="", epochs=2, lr=0.02,
        momentum=0.9, weight_decay=5e-4, rho=2.0, initial_bits=4,
        candidate_bits=(1, 2, 3, 4, 5, 6, 7, 8), bit_allocation="exact", kmeans_bins=48,
        proj_every=0, dual_every=0, kd_temperature=0.0, budgets=(50.0, 200.0), ptq_bits=4,
        quantize_only_bits=(2, 8), methods=METHODS, workers=0, data_root=""),
    tutorial=PruneQuantConfig(
        model="small_cnn", dataset="digits", image_size=16, channels=(16, 32), hidden=64,
        batch_size=64, pretrain_epochs=60, pretrain_lr=0.05, pretrained="", epochs=30, lr=0.02,
        momentum=0.9, weight_decay=5e-4, rho=2.0, initial_bits=4,
        candidate_bits=(1, 2, 3, 4, 5, 6, 7, 8), bit_allocation="exact", kmeans_bins=128,
        proj_every=0, dual_every=0, kd_temperature=0.0, budgets=(50.0, 200.0, 1000.0),
        ptq_bits=4, quantize_only_bits=(1, 2, 4, 8), methods=METHODS, workers=0,
        data_root=""),
    full=PruneQuantConfig(  # ResNet-50 on CIFAR-10, the paper's 836x headline
        model="resnet50", dataset="cifar10", image_size=32, channels=(16, 32), hidden=64,
        batch_size=128, pretrain_epochs=200, pretrain_lr=0.1, pretrained="", epochs=120,
        lr=0.01, momentum=0.9, weight_decay=5e-4, rho=0.05, initial_bits=4,
        candidate_bits=(1, 2, 3, 4, 5, 6, 7, 8), bit_allocation="greedy", kmeans_bins=512,
        proj_every=0, dual_every=0, kd_temperature=0.0, budgets=(50.0, 200.0, 836.0),
        ptq_bits=4, quantize_only_bits=(1, 2, 4, 8), methods=("joint",), workers=8,
        data_root=""),
)

#: Knobs of the paper's other full-scale setups (``setup_config("full", name)``), from the
#: official code's README where it gives them; the rest is our reading.
SETUPS: dict[str, dict[str, Any]] = {
    "default": {},
    "lenet5-mnist": dict(model="lenet5", dataset="mnist", image_size=28, batch_size=256,
                         pretrain_epochs=20, pretrain_lr=0.05, epochs=120, lr=0.1,
                         momentum=0.93, weight_decay=5e-4, rho=0.05, initial_bits=3,
                         budgets=(1975.0,)),
    "resnet20-cifar10": dict(model="resnet20", dataset="cifar10", budgets=(50.0, 200.0)),
    "resnet50-cifar10": {},
    "alexnet-imagenet": dict(model="alexnet", dataset="imagenet", image_size=224,
                             batch_size=256, pretrain_epochs=0,
                             pretrained="pretrained/alexnet-imagenet.pth", epochs=90, lr=0.01,
                             momentum=0.9, weight_decay=1e-4, rho=1e-3, initial_bits=6,
                             budgets=(205.0,)),
}


def setup_config(scale: str, setup: str = "default", **knobs: Any) -> PruneQuantConfig:
    """``CONFIGS[scale]`` with a named full-scale setup's knobs and then ``knobs`` applied."""
    from lib.core import with_knobs

    if setup not in SETUPS:
        raise ValueError(f"unknown setup {setup!r}; valid setups are {', '.join(SETUPS)}")
    if setup != "default" and scale != "full":
        raise ValueError(f"setup {setup!r} is a full-scale setup; use scale='full'")
    return with_knobs(CONFIGS[scale], **{**SETUPS[setup], **knobs})

#: The paper's headline claims (abstract) and the official code's MNIST recipe
#: (``--nnz_budget 0.0054 --bit_budget 3``: 32 / (0.0054 * 3) = 1975x), for the chapter.
PAPER_RESULTS = (
    {"model": "ResNet-50", "dataset": "CIFAR-10", "ratio": 836.0,
     "claim": "no accuracy loss (paper)"},
    {"model": "AlexNet", "dataset": "ImageNet", "ratio": 205.0,
     "claim": "no accuracy loss (paper)"},
    {"model": "LeNet-5", "dataset": "MNIST", "ratio": 1975.0,
     "claim": "official recipe, about 2000x"},
)


# --------------------------------------------------------------------------- data
@dataclass
class Task:
    """Training batches by step, an evaluation, and the model to compress."""

    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]]
    steps_per_epoch: int
    evaluate: Callable[[nn.Module], float]
    make_model: Callable[[], nn.Module]
    n_test: int


def make_task(cfg: PruneQuantConfig, seed: int = 0, device: str | torch.device = "cpu") -> Task:
    """The data and model of ``cfg``: embedded digits, or a full-scale data set on disk."""
    device = torch.device(device)
    if cfg.dataset == "digits":
        data = {k: v.to(device) for k, v in digits_images(seed, cfg.image_size).items()}
        batches = IndexBatches(len(data["y_train"]), cfg.batch_size, seed)

        def batch(step: int):
            idx = batches.indices(step).to(device)
            return data["x_train"][idx], data["y_train"][idx]

        @torch.no_grad()
        def evaluate(model: nn.Module) -> float:
            model.eval()
            return (model(data["x_test"]).argmax(1) == data["y_test"]).float().mean().item()

        def make() -> nn.Module:
            return build_model("small_cnn", channels=cfg.channels, hidden=cfg.hidden,
                               image_size=cfg.image_size).to(device)

        return Task(batch, batches.per_epoch, evaluate, make, len(data["y_test"]))
    root = cfg.data_root or None
    train = vision_dataset(cfg.dataset, True, root)
    test = vision_dataset(cfg.dataset, False, root)
    steps = StepBatches(train, cfg.batch_size, seed, cfg.workers)

    def batch_full(step: int):
        x, y = steps(step)
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    @torch.no_grad()
    def evaluate_full(model: nn.Module) -> float:
        model.eval()
        loader = torch.utils.data.DataLoader(test, batch_size=256, num_workers=cfg.workers)
        correct = total = 0
        for x, y in loader:
            correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
            total += len(y)
        return correct / total

    def make_full() -> nn.Module:
        return build_model(cfg.model).to(device)

    return Task(batch_full, steps.per_epoch, evaluate_full, make_full, len(test))


# --------------------------------------------------------------------------- ADMM steps
def budget_bits(model: nn.Module, ratio: float) -> int:
    """The size budget ``S = floor(32 N / ratio)`` bits for a target compression ratio."""
    if not ratio >= 1:
        raise ValueError(f"a compression ratio must be >= 1, got {ratio}")
    n = sum(m.weight.numel() for _, m in prunable_layers(model))
    return int(math.floor(32 * n / ratio))


@torch.no_grad()
def sparse_projection(weights: list[torch.Tensor], bits: list[int], budget: float) -> list[int]:
    """Step 2: zero ``W`` (in place) outside the greedy knapsack by ``w^2 / b_j`` under
    ``sum_j b_j nnz_j <= budget``; returns the per-layer nonzeros."""
    masks = weighted_sparse_masks(weights, bits, budget)
    for w, m in zip(weights, masks, strict=True):
        w.mul_(m.to(w.dtype))
    return [int((w != 0).sum()) for w in weights]


@torch.no_grad()
def quantization_projection(targets: list[torch.Tensor], support: list[torch.Tensor],
                            budget: float, candidate_bits: tuple[int, ...],
                            solver: str = "exact", kmeans_bins: int = 512,
                            fixed_bits: list[int] | None = None, fixed_zero: bool = True
                            ) -> tuple[list[torch.Tensor], list[int], dict[str, Any]]:
    """Step 3 (V-step): quantize ``W + U`` on ``W``'s support.

    Per layer, k-means with a zero centre at every candidate bit-width gives ``D_j(b)``;
    a multiple-choice knapsack picks ``b_j`` minimising ``sum D_j(b_j)`` under
    ``sum b_j nnz_j <= budget`` (unless ``fixed_bits``). Returns ``V``, the bits and the
    distortion table with whether the paper's greedy agrees with the exact choice.
    """
    masked = [t * s.to(t.dtype) for t, s in zip(targets, support, strict=True)]
    nnz = [int(s.sum()) for s in support]
    bits_list = list(candidate_bits) if fixed_bits is None else sorted(set(fixed_bits))
    fits = [kmeans_quantize_all_bits(x, bits_list, max_bins=kmeans_bins, fixed_zero=fixed_zero)
            for x in masked]
    distortion = torch.tensor([[f.distortion for f in layer] for layer in fits],
                              dtype=torch.float64)
    info: dict[str, Any] = {"distortion": distortion.tolist(), "candidate_bits": bits_list}
    if fixed_bits is None:
        bits = allocate_bits(distortion, nnz, bits_list, budget, solver=solver)
        greedy = allocate_bits(distortion, nnz, bits_list, budget, solver="greedy")
        info["greedy_agrees"] = greedy == bits
    else:
        bits = list(fixed_bits)
    quantized = [layer[bits_list.index(b)].weight for layer, b in zip(fits, bits, strict=True)]
    return quantized, bits, info


def classification_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        teacher: nn.Module | None = None, temperature: float = 0.0
                        ) -> torch.Tensor:
    """Cross-entropy, plus ``T * CE(softmax(teacher / T), softmax(model / T))`` when
    distilling (as the official code's ``classify_loss``)."""
    out = model(x)
    loss = F.cross_entropy(out, y)
    if teacher is not None and temperature > 0:
        with torch.no_grad():
            soft = F.softmax(teacher(x) / temperature, dim=1)
        loss = loss + temperature * -(soft * F.log_softmax(out / temperature, dim=1)).sum(1).mean()
    return loss


def admm_compress(model: nn.Module, task: Task, cfg: PruneQuantConfig, budget: float, *,
                  prune: bool = True, quantize: bool = True, fixed_bits: int | None = None,
                  fixed_zero: bool = True, projection_bits: int | None = None,
                  freeze_support: bool = False, epochs: int | None = None,
                  teacher: nn.Module | None = None, seed: int = 0,
                  ckpt_dir: str | Path | None = None, run_key: str | None = None,
                  desc: str = "admm") -> dict[str, Any]:
    """Compress ``model`` in place under ``budget`` bits with ADMM (Algorithm 1).

    ``prune``/``quantize`` switch steps 2 and 3-4 (prune-only: no V-step; quantize-only:
    no projection). ``fixed_bits`` skips the bit allocation; ``projection_bits`` fixes the
    cost of a nonzero in the projection (32 for prune-only); ``freeze_support`` keeps the
    current zeros (the second stage of prune-then-quantize). Returns the final bits,
    nonzeros, the accounted size, and the per-V-step history (residual ``|W - V|^2 /
    |W|^2``, bits, nonzeros).
    """
    seed_everything(seed)
    layers = prunable_layers(model)
    weights = [m.weight for _, m in layers]
    support = [(w != 0) for w in weights] if freeze_support else None
    n_layers = len(weights)
    init_bits = (projection_bits if projection_bits is not None
                 else fixed_bits if fixed_bits is not None else cfg.initial_bits)
    state = ADMMState(weights, [init_bits] * n_layers)
    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    other = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": other, "weight_decay": 0.0}], lr=cfg.lr,
                          momentum=cfg.momentum)
    epochs = cfg.epochs if epochs is None else epochs
    steps = epochs * task.steps_per_epoch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    proj_every = cfg.proj_every or task.steps_per_epoch
    dual_every = cfg.dual_every or task.steps_per_epoch
    cost_bits = (lambda: [projection_bits] * n_layers) if projection_bits is not None else (
        lambda: state.bits)

    def project() -> None:  # step 2 (or the fixed support of stage two)
        if freeze_support:
            with torch.no_grad():
                for w, s in zip(weights, support, strict=True):
                    w.mul_(s.to(w.dtype))
            state.nnz = [int((w != 0).sum()) for w in weights]
        elif prune:
            state.nnz = sparse_projection(weights, cost_bits(), budget)

    def v_step(step: int) -> None:  # steps 3 and 4
        targets = [w.detach() + u for w, u in zip(weights, state.u, strict=True)]
        current = [(w != 0) for w in weights] if (prune or freeze_support) else [
            torch.ones_like(w, dtype=torch.bool) for w in weights]
        v, bits, info = quantization_projection(
            targets, current, budget, tuple(cfg.candidate_bits), cfg.bit_allocation,
            cfg.kmeans_bins, None if fixed_bits is None else [fixed_bits] * n_layers,
            fixed_zero)
        state.v, state.bits = v, bits
        residual = 0.0
        with torch.no_grad():
            for w, vj, uj in zip(weights, state.v, state.u, strict=True):
                diff = w.detach() - vj
                uj.add_(diff)  # U <- U + W - V
                residual += float((diff ** 2).sum())
        norm = sum(float((w.detach() ** 2).sum()) for w in weights)
        state.history.append({"step": step, "residual": residual / max(norm, 1e-30),
                              "bits": list(bits), "nnz": list(state.nnz),
                              "greedy_agrees": info.get("greedy_agrees")})

    # start from the pretrained model: project and quantize once (official code, epoch 0)
    project()
    if quantize:
        v_step(0)

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        x, y = task.batch(step)
        opt.zero_grad(set_to_none=True)
        loss = classification_loss(model, x, y, teacher, cfg.kd_temperature)
        loss.backward()
        lr = opt.param_groups[0]["lr"]
        opt.step()  # step 1a: SGD on L(W)
        sched.step()
        if quantize:
            proximal_pull(weights, state.v, state.u, lr, cfg.rho)  # step 1b
        done = step + 1
        if done % proj_every == 0 or done == steps or freeze_support:
            project()
        if quantize and (done % dual_every == 0 or done == steps):
            v_step(done)
        return {"loss": loss.item()}

    result = train_loop(step_fn, steps, state={"model": model, "opt": opt, "sched": sched,
                                               "admm": state},
                        ckpt_dir=ckpt_dir, run_key=run_key,
                        ckpt_every=task.steps_per_epoch if ckpt_dir else 0,
                        log_every=task.steps_per_epoch, desc=desc)
    project()  # the final model obeys the projection
    bits = state.bits if quantize else [32] * n_layers
    if quantize:  # the final model: W quantized with the final bits (k-means, zero centre)
        with torch.no_grad():
            for w, b in zip(weights, bits, strict=True):
                w.copy_(kmeans_quantize(w, b, max_bins=cfg.kmeans_bins,
                                        fixed_zero=fixed_zero).weight)
    report = model_size_bits(layers, bits)
    return {"bits": bits, "nnz": [r["nnz"] for r in report.layers],
            "size_bits": report.total_bits, "budget_bits": budget, "ratio": report.ratio,
            "history": state.history, "train_seconds": result.wall_time_s,
            "losses": [h["loss"] for h in result.history]}


# --------------------------------------------------------------------------- methods
def pretrained_dense(cfg: PruneQuantConfig, seed: int = 0, device: str = "cpu",
                     cache: ArtifactCache | None = None,
                     checkpoint: bool | None = None) -> dict[str, Any]:
    """The dense starting point: loaded from ``cfg.pretrained`` or trained once (cached;
    with ``checkpoint``, default at full scale, the training checkpoints every epoch into
    its own run folder and a killed build resumes)."""
    if cfg.pretrained:
        from lib.vision import data_root

        path = data_root(cfg.data_root or None) / cfg.pretrained
        if not path.exists():
            raise FileNotFoundError(f"pretrained weights {path} not found; fetch them with: "
                                    f"python data_scripts/fetch_vision.py alexnet-pretrained "
                                    f"--root {data_root(cfg.data_root or None)}")
        task = make_task(cfg, seed, device)
        model = task.make_model()
        model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        return {"state_dict": model.state_dict(), "accuracy": task.evaluate(model),
                "train_seconds": 0.0}
    checkpoint = cfg.dataset != "digits" if checkpoint is None else checkpoint

    def build(ckpt_dir: Path, run_key: str) -> dict[str, Any]:
        task = make_task(cfg, seed, device)
        seed_everything(seed)
        model = task.make_model()
        steps = cfg.pretrain_epochs * task.steps_per_epoch
        opt = torch.optim.SGD(model.parameters(), lr=cfg.pretrain_lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))

        def step_fn(step: int) -> dict[str, float]:
            model.train()
            x, y = task.batch(step)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            return {"loss": loss.item()}

        result = train_loop(step_fn, steps, state={"model": model, "opt": opt, "sched": sched},
                            ckpt_dir=ckpt_dir if checkpoint else None,
                            run_key=run_key if checkpoint else None,
                            ckpt_every=task.steps_per_epoch if checkpoint else 0,
                            log_every=0, desc="dense")
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "accuracy": task.evaluate(model), "train_seconds": result.wall_time_s}

    return (cache or ArtifactCache()).get_or_train(
        "prune-quant-dense", {"config": _dense_part(cfg), "seed": seed}, build)


def _dense_part(cfg: PruneQuantConfig) -> dict[str, Any]:
    """The knobs the dense model depends on (so budgets and ADMM knobs don't retrain it)."""
    return {k: getattr(cfg, k) for k in ("model", "dataset", "image_size", "channels", "hidden",
                                         "batch_size", "pretrain_epochs", "pretrain_lr",
                                         "momentum", "weight_decay", "data_root")}


def compress(cfg: PruneQuantConfig, method: str, level: float, seed: int = 0,
             device: str = "cpu", ckpt_dir: str | Path | None = None,
             run_key: str | None = None) -> dict[str, Any]:
    """Run one method from the dense model. ``level`` is the target compression ratio
    (the bit-width for ``quantize-only``). Returns accuracy, size, ratio, per-layer table.
    With ``ckpt_dir`` and ``run_key`` each stage checkpoints every epoch and resumes."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods are {', '.join(METHODS)}")
    dense = pretrained_dense(cfg, seed, device)
    task = make_task(cfg, seed, device)
    model = task.make_model()
    model.load_state_dict(dense["state_dict"])
    teacher = None
    if cfg.kd_temperature > 0:
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    run_seed = derive_seed(seed, method, level)
    def ckpt(stage: str) -> dict[str, Any]:
        if ckpt_dir is None:
            return {"ckpt_dir": None}
        return {"ckpt_dir": Path(ckpt_dir) / stage, "run_key": f"{run_key}-{stage}"}

    start = time.perf_counter()
    if method == "quantize-only":
        bits = int(level)
        budget = bits * sum(m.weight.numel() for _, m in prunable_layers(model))
        out = admm_compress(model, task, cfg, budget, prune=False, fixed_bits=bits,
                            fixed_zero=False, teacher=teacher, seed=run_seed,
                            **ckpt("admm"), desc=method)
    else:
        budget = budget_bits(model, level)
        if method == "joint":
            out = admm_compress(model, task, cfg, budget, teacher=teacher, seed=run_seed,
                                **ckpt("admm"), desc=method)
        elif method == "prune-only":
            out = admm_compress(model, task, cfg, budget, quantize=False, projection_bits=32,
                                teacher=teacher, seed=run_seed, **ckpt("admm"),
                                desc=method)
        else:  # prune-then-quantize: half the epochs each, fixed bits
            first = cfg.epochs // 2
            admm_compress(model, task, cfg, budget, quantize=False,
                          projection_bits=cfg.ptq_bits, epochs=first, teacher=teacher,
                          seed=run_seed, **ckpt("prune"), desc=f"{method} (prune)")
            out = admm_compress(model, task, cfg, budget, prune=False, freeze_support=True,
                                fixed_bits=cfg.ptq_bits, epochs=cfg.epochs - first,
                                teacher=teacher, seed=run_seed + 1, **ckpt("quant"),
                                desc=f"{method} (quantize)")
    accuracy = task.evaluate(model)
    names = [n for n, _ in prunable_layers(model)]
    numel = [m.weight.numel() for _, m in prunable_layers(model)]
    layers = [{"layer": n, "weights": k, "nonzeros": z, "sparsity": 1 - z / k, "bits": b,
               "size_bits": b * z} for n, k, z, b in zip(names, numel, out["nnz"], out["bits"],
                                                        strict=True)]
    return {"method": method, "level": level, "accuracy": accuracy, "n_test": task.n_test,
            "dense_accuracy": dense["accuracy"], "size_bits": out["size_bits"],
            "budget_bits": out["budget_bits"], "ratio": out["ratio"], "layers": layers,
            "history": out["history"], "losses": out["losses"],
            "seconds": time.perf_counter() - start,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def cached_compress(cfg: PruneQuantConfig, method: str, level: float, seed: int = 0,
                    device: str = "cpu", cache: ArtifactCache | None = None,
                    checkpoint: bool | None = None) -> dict[str, Any]:
    """``compress`` through the artifact cache (keyed by config, method, level, seed, code);
    with ``checkpoint`` (default at full scale) a killed run resumes from its last epoch."""
    key = {"config": cfg, "method": method, "level": level, "seed": seed}
    checkpoint = cfg.dataset != "digits" if checkpoint is None else checkpoint

    def build(ckpt_dir: Path, run_key: str) -> dict[str, Any]:
        if not checkpoint:
            return compress(cfg, method, level, seed, device)
        return compress(cfg, method, level, seed, device, ckpt_dir, run_key)

    return (cache or ArtifactCache()).get_or_train("prune-quant-run", key, build)


def run(cfg: PruneQuantConfig, seed: int = 0, device: str = "cpu",
        cache: ArtifactCache | None = None) -> dict[str, Any]:
    """Every method at every budget (quantize-only at its bit-widths), cached per run."""
    pretrained_dense(cfg, seed, device, cache)  # first, with its checkpoints
    runs = []
    for method in cfg.methods:
        levels = cfg.quantize_only_bits if method == "quantize-only" else cfg.budgets
        for level in levels:
            runs.append(cached_compress(cfg, method, float(level), seed, device, cache))
    dense = pretrained_dense(cfg, seed, device, cache)
    return {"dense_accuracy": dense["accuracy"], "dense_train_seconds": dense["train_seconds"],
            "runs": runs}


def initial_bits_sweep(cfg: PruneQuantConfig, ratio: float, initial_bits: tuple[int, ...],
                       seed: int = 0, device: str = "cpu",
                       cache: ArtifactCache | None = None) -> list[dict[str, Any]]:
    """The joint method at one budget from different initial bits (the bits of the first
    sparse projection, the official code's ``floor(bit_budget)``)."""
    from lib.core import with_knobs

    return [cached_compress(with_knobs(cfg, initial_bits=b), "joint", float(ratio), seed,
                            device, cache) for b in initial_bits]


def greedy_vs_exact_bits(distortion: torch.Tensor, nnz: list[int], candidate_bits: list[int],
                         budget: float) -> tuple[list[int], list[int]]:
    """The paper's greedy and the exact bit allocation for one distortion table."""
    costs = [[b * n for b in candidate_bits] for n in nnz]
    greedy = multiple_choice_knapsack(costs, distortion.tolist(), budget)
    exact = allocate_bits(distortion, nnz, candidate_bits, budget, solver="exact")
    return [candidate_bits[i] for i in greedy], exact


# --------------------------------------------------------------------------- claims
#: What the scoreboard judges from this chapter's record (paired intervals the chapter
#: records with ``Interval.as_metrics``; absent metrics read "not measured").
CLAIMS = [
    Claim.interval("prune_quant", "joint-vs-deep-compression",
                   "Joint sparsity-quantization under a size budget is more accurate than "
                   "Deep Compression (prune, fine-tune, k-means) at the same size",
                   paper="836x ResNet-50 CIFAR-10 and 205x AlexNet ImageNet without accuracy "
                         "loss, beyond sequential pipelines",
                   prefix="acc_joint_vs_deep_compression", paper_effect=0.01,
                   unit="accuracy difference", percent=True),
]
#: One process: the compression loop is not data-parallel.
DATA_PARALLEL = False
