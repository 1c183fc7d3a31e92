"""The capstone: the book's compression methods on one task, in bytes and milliseconds.

One network (the compression chapters' shared ``lenet5_like`` on the synthetic digits, the
dense model of seed 0 that ``energy_training`` and ``ecc`` also train), one budget axis (the
compression ratio of the papers' accounting, ``32 N / size``), every method started from
the same dense model, given the same number of training steps, and run through its own
chapter's library function with that chapter's default knobs:

* ``global-magnitude``: one magnitude threshold over all layers (``lib.sparse``), then
  masked fine-tuning; size ``32 nnz``;
* ``channel-magnitude``: the same share of output channels (largest l2 norm) pruned in
  every hidden layer, fine-tuned, then physically removed (``lib.sparse.extract``);
* ``joint-admm``: ``prune_quant.admm_compress`` (Yang et al., CVPR 2020), size
  ``sum_j b_j nnz_j``;
* ``energy-projection``: ``energy_training.method.energy_constrained_training`` (Yang, Zhu
  and Liu, ICLR 2019) at the modelled energy of global magnitude pruning at the same ratio;
* ``atmc``: ``atmc.factorize`` + ``atmc.compress_adversarially`` (Gui et al., NeurIPS 2019),
  ATMC-8 with the atmc chapter's tuned knobs, the global l0 budget over ``U, V, C`` at
  ``8 nnz <= 32 N / ratio``; scored clean and under PGD;
* ``ecc``: ``ecc.ecc_compress`` (Yang, Zhu and Liu, CVPR 2019) with the ecc chapter's knobs,
  its bilinear cost model here the exact weight count of the widths (``size_cost_model``),
  so its budget is the same size budget;
* ``gs-slimming``: GAN Slimming's channel slimming + 8-bit quantization on the classifier
  (``slimming.gs_classifier``, from GS's lower layers), ``8 x weights <= 32 N / ratio``.

Then each model is stored with ``lib.quant.pack`` (bytes on disk), run in its deployable
forms (``deploy``: dense, CSR, extracted, ONNX Runtime int8) and timed, all models
interleaved in one run, and its energy modelled with the systolic-array model of
``lib.energy.systolic``. Every model is also scored under PGD (the ATMC chapter's attack).

Tuning: no method is tuned here. Each runs with the knobs its own chapter chose (ATMC's
learning rate, GS's ``rho`` and ECC's ``rho_z`` were tuned on dev in their chapters; the
magnitude baselines use energy_training's fine-tuning lr); ``TUNING`` records where each
method's knobs come from.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lib.core import ArtifactCache, ScaleConfigs, derive_seed, seed_everything, with_knobs
from lib.core.stats import paired_bootstrap
from lib.energy.bilinear import CostModel
from lib.energy.systolic import layer_geometries, systolic_energy
from lib.papers import atmc, ecc, energy_training, gan_slimming, prune_quant
from lib.quant.pack import PackSpec, best_spec, write_packed
from lib.quant.size import model_size_bits
from lib.sparse import (
    attach_mask,
    bake,
    channel_mask,
    global_magnitude_masks,
    prunable_layers,
)
from lib.sparse.extract import attach_channel_mask, extract_channel_pruned
from lib.sparse.input_channels import extract_input_pruned, width_boundaries
from lib.vision.attacks import PGDConfig, robust_correct
from lib.vision.classify import (
    ClassifierTraining,
    correct,
    train_classifier,
    trained_classifier,
    trained_classifier_key,
)
from lib.vision.models import lenet5_like
from lib.vision.synthetic import SyntheticDigitsConfig, cached_synthetic_digits

from . import deploy
from .slimming import gs_classifier

METHODS = ("global-magnitude", "channel-magnitude", "joint-admm", "energy-projection", "atmc",
           "ecc", "gs-slimming")
#: Methods of the book not yet in the comparison (the chapter lists them): none.
MISSING: dict[str, str] = {}
#: The deployable forms timed for each method (``dense``: the baked full-size network).
FORMS = {"dense": ("dense", "onnx", "int8"),
         "global-magnitude": ("dense", "csr", "onnx", "int8"),
         "channel-magnitude": ("extracted", "onnx", "int8"),
         "joint-admm": ("dense", "csr", "onnx", "int8"),
         "energy-projection": ("dense", "csr", "onnx", "int8"),
         "atmc": ("dense", "onnx", "int8"),  # U V + C recombined: a dense matrix
         "ecc": ("extracted", "onnx", "int8"),
         "gs-slimming": ("extracted", "onnx", "int8")}
#: Methods whose deployable network is physically smaller (``extracted``), and how.
EXTRACTED = {"channel-magnitude": "output", "gs-slimming": "output", "ecc": "input"}
#: Where each method's knobs come from (no per-method tuning in the capstone).
TUNING = {
    "global-magnitude": "fine-tuning lr = energy_training's lr (lr knob), not tuned here",
    "channel-magnitude": "fine-tuning lr = energy_training's lr (lr knob), not tuned here",
    "joint-admm": "prune_quant.CONFIGS[prune_quant_scale] (the chapter's defaults)",
    "energy-projection": "energy_training.method.EnergyKnobs defaults",
    "atmc": "atmc.CONFIGS[atmc_scale]: ATMC-8's lr tuned on dev there (atmc.TUNING)",
    "ecc": "ecc knobs_of(ecc.CONFIGS[ecc_scale]): rho_z tuned on dev there (ecc.TUNING)",
    "gs-slimming": "gan_slimming.CONFIGS[gs_scale]: rho tuned on dev there "
                   "(gan_slimming.TUNING)",
}
#: The forms PyTorch runs in float32 (the rest run in ONNX Runtime).
TORCH_FORMS = ("dense", "csr", "extracted")


@dataclass(frozen=True)
class HeadToHeadConfig:
    """Knobs of the comparison (the data and dense recipe are energy_training's and ecc's)."""

    n_train: int
    n_dev: int
    n_test: int
    dense_steps: int               # the shared dense model (cached, shared with chapters)
    dense_lr: float
    batch_size: int
    ratios: tuple[float, ...]      # compression ratios (papers' accounting) to meet
    steps: int                     # training steps every method gets after the dense model
    lr: float                      # fine-tuning lr of the magnitude baselines (= energy's)
    seeds: tuple[int, ...]         # compression seeds (one dense model, seed 0)
    methods: tuple[str, ...]
    prune_quant_scale: str         # whose prune_quant defaults ADMM runs with
    latency_batch: int             # images per timed call
    latency_rounds: int
    latency_number: int
    calibration: int               # training images calibrating the int8 activations
    index_bits: int = 4            # relative-index field of the packed format
    atmc_scale: str = "tutorial"   # whose atmc knobs (lr, rho, attack) ATMC runs with
    ecc_scale: str = "tutorial"    # whose ecc knobs ECC runs with
    gs_scale: str = "tutorial"     # whose gan_slimming knobs GS runs with
    pgd_eps: float = 0.05          # the atmc chapter's tutorial radius (pixels in [0, 1])
    pgd_steps: int = 10            # the atmc chapter's evaluation PGD
    n_pgd: int = 500               # test images every model is attacked on (paired)


_TUTORIAL = HeadToHeadConfig(
    n_train=20000, n_dev=2000, n_test=5000, dense_steps=3000, dense_lr=0.05, batch_size=64,
    ratios=(8.0, 32.0), steps=600, lr=0.01, seeds=(0, 1, 2), methods=METHODS,
    prune_quant_scale="tutorial", latency_batch=1, latency_rounds=9, latency_number=20,
    calibration=256)

CONFIGS = ScaleConfigs(
    smoke=with_knobs(_TUTORIAL, n_train=600, n_dev=100, n_test=200, dense_steps=60, steps=20,
                     ratios=(8.0,), prune_quant_scale="smoke", latency_rounds=3,
                     latency_number=3, calibration=32, atmc_scale="smoke", ecc_scale="smoke",
                     gs_scale="smoke", pgd_steps=3, n_pgd=100,
                     seeds=(0,)),  # one seed: the smoke run checks the code, not a verdict
    tutorial=_TUTORIAL,
    full=with_knobs(_TUTORIAL, ratios=(4.0, 8.0, 16.0, 32.0, 64.0), steps=3000,
                    seeds=(0, 1, 2, 3, 4), latency_batch=1, latency_rounds=15,
                    latency_number=50, calibration=1024),
)


# ----------------------------------------------------------------------------- the task
def data_config(cfg: HeadToHeadConfig) -> SyntheticDigitsConfig:
    return SyntheticDigitsConfig(n_train=cfg.n_train, n_dev=cfg.n_dev, n_test=cfg.n_test)


def dense_recipe(cfg: HeadToHeadConfig) -> ClassifierTraining:
    return ClassifierTraining(steps=cfg.dense_steps, batch_size=cfg.batch_size, lr=cfg.dense_lr)


def task_of(cfg: HeadToHeadConfig, cache: ArtifactCache) -> dict[str, Any]:
    """The data, the dense model's state and its cache key (seed 0, shared)."""
    dense = trained_classifier("lenet5_like", {}, data_config(cfg), dense_recipe(cfg), 0, cache)
    key = trained_classifier_key("lenet5_like", {}, data_config(cfg), dense_recipe(cfg), 0,
                                 cache)
    data = cached_synthetic_digits(data_config(cfg), 0, cache)
    return {"data": data, "dense_state": dense["state_dict"], "dense_key": key,
            "dense_accuracy": float(dense["test_accuracy"])}


def dense_model(task: dict[str, Any]) -> nn.Sequential:
    net = lenet5_like()
    net.load_state_dict(task["dense_state"])
    return net


def n_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for _, m in prunable_layers(model))


# ----------------------------------------------------------------------------- methods
def _fine_tune(model: nn.Module, task: dict[str, Any], cfg: HeadToHeadConfig, seed: int,
               desc: str) -> None:
    recipe = ClassifierTraining(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr)
    train_classifier(model, task["data"], recipe, seed, desc=desc, show_progress=False)


def global_magnitude(model: nn.Module, task, cfg, ratio: float, seed: int) -> dict[str, Any]:
    """Keep the ``N / ratio`` largest weights of the whole network, fine-tune masked."""
    layers = prunable_layers(model)
    for (_, layer), mask in zip(layers, global_magnitude_masks(layers, 1 - 1 / ratio),
                                strict=True):
        attach_mask(layer, mask.to(layer.weight.dtype))
    _fine_tune(model, task, cfg, seed, "global magnitude")
    bake(model)
    return {"bits": [32] * len(layers)}


def _channel_keep(model: nn.Module, sparsity: float) -> list[torch.Tensor]:
    hidden = prunable_layers(model)[:-1]  # the output layer keeps its classes
    return [channel_mask(m.weight, sparsity).flatten(1).ne(0).any(1) for _, m in hidden]


def _extracted_weights(model: nn.Module, sparsity: float, example: torch.Tensor) -> int:
    probe = dense_model({"dense_state": model.state_dict()})
    layers = prunable_layers(probe)
    with torch.no_grad():
        for (_, layer), keep in zip(layers, _channel_keep(probe, sparsity), strict=False):
            layer.weight[~keep] = 0
            layer.bias[~keep] = 0
    return n_weights(extract_channel_pruned(probe, example))


def channel_sparsity_for(model: nn.Module, ratio: float, example: torch.Tensor) -> float:
    """The smallest uniform channel sparsity whose extracted network has ``<= N / ratio``
    weights (bisection; a channel count is an integer, so the weights step down)."""
    target = n_weights(model) / ratio
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _extracted_weights(model, mid, example) > target else (lo, mid)
    return hi


def channel_magnitude(model: nn.Module, task, cfg, ratio: float, seed: int) -> dict[str, Any]:
    """Prune the same share of output channels (smallest l2 norm) in every hidden layer,
    fine-tune with the channels masked (weights, biases), then remove them."""
    example = task["data"]["x_test"][:2]
    sparsity = channel_sparsity_for(model, ratio, example)
    layers = prunable_layers(model)
    for (_, layer), keep in zip(layers, _channel_keep(model, sparsity), strict=False):
        attach_channel_mask(layer, keep)
    _fine_tune(model, task, cfg, seed, "channel magnitude")
    bake(model)
    return {"bits": [32] * len(layers), "channel_sparsity": sparsity}


def joint_admm(model: nn.Module, task, cfg, ratio: float, seed: int) -> dict[str, Any]:
    """``prune_quant.admm_compress`` with the prune_quant chapter's default knobs."""
    pq = prune_quant.CONFIGS[cfg.prune_quant_scale]
    data = task["data"]
    from lib.core import IndexBatches

    batches = IndexBatches(len(data["y_train"]), pq.batch_size, derive_seed(seed, "admm"))

    def batch(step: int):
        idx = batches.indices(step)
        return data["x_train"][idx], data["y_train"][idx]

    def ok(m: nn.Module) -> torch.Tensor:
        return correct(m, data["x_test"], data["y_test"])

    pq_task = prune_quant.Task(batch=batch, steps_per_epoch=max(1, cfg.steps // pq.epochs),
                               evaluate=lambda m: float(ok(m).mean()), make_model=lenet5_like,
                               n_test=len(data["y_test"]), correct=ok)
    budget = prune_quant.budget_bits(model, ratio)
    out = prune_quant.admm_compress(model, pq_task, pq, budget, seed=seed, desc="joint ADMM")
    return {"bits": list(out["bits"]), "admm_budget_bits": budget}


def energy_target(model: nn.Module, ratio: float, geoms) -> float:
    """The modelled energy of the dense model globally magnitude-pruned to ``N / ratio``."""
    probe = dense_model({"dense_state": model.state_dict()})
    layers = prunable_layers(probe)
    with torch.no_grad():
        masks = global_magnitude_masks(layers, 1 - 1 / ratio)
        for (_, layer), mask in zip(layers, masks, strict=True):
            layer.weight.mul_(mask.to(layer.weight.dtype))
    return systolic_energy(probe, geoms)


def energy_projection(model: nn.Module, task, cfg, ratio: float, seed: int) -> dict[str, Any]:
    """``energy_constrained_training`` (weight projection, the chapter's default knobs) to
    the energy that global magnitude pruning reaches at the same ratio."""
    et = energy_training.method
    data = task["data"]
    geoms = layer_geometries(model, data["x_test"][:1])
    target = energy_target(model, ratio, geoms)
    teacher = dense_model(task).eval()
    batches = et.Batches(data["x_train"], data["y_train"],
                         et.teacher_logits(teacher, data["x_train"]), cfg.batch_size,
                         derive_seed(seed, "energy"))
    knobs = et.EnergyKnobs(steps=cfg.steps, batch_size=cfg.batch_size)
    out = et.energy_constrained_training(model, batches, geoms, target, knobs,
                                         use_input_masks=False)
    return {"bits": [32] * len(prunable_layers(model)), "energy_budget": target,
            "final_energy": out["final_energy"]}


def _batches(task, cfg: HeadToHeadConfig, seed: int, tag: str):
    from lib.core import IndexBatches

    data = task["data"]
    batches = IndexBatches(len(data["y_train"]), cfg.batch_size, derive_seed(seed, tag))

    def batch(step: int):
        idx = batches.indices(step)
        return data["x_train"][idx], data["y_train"][idx]

    return batch


def atmc_steps(steps: int, pgd_steps: int) -> int:
    """ATMC's steps at the same forward-backward passes as ``steps`` clean steps: one
    adversarial step costs ``pgd_steps`` attack passes plus the clean and the adversarial
    loss's (``pgd_steps + 2``)."""
    return max(1, steps // (pgd_steps + 2))


def atmc_compress(model: nn.Module, task, cfg, ratio: float, seed: int) -> dict[str, Any]:
    """ATMC-8 (``atmc.factorize`` + ``atmc.compress_adversarially``) with the atmc chapter's
    knobs (its dev-tuned lr for ATMC-8, rank fraction, rho, ADMM period, PGD in training),
    the capstone's batch and training passes (``atmc_steps``), the global l0 budget ``k``
    over ``U, V, C`` with ``8 k <= 32 N / ratio``. ``W = U V + C`` is then written back
    into the plain network."""
    ac = atmc.CONFIGS[cfg.atmc_scale]
    n = n_weights(model)
    bits = atmc.BITS["atmc-8"]
    work = atmc.factorize(dense_model({"dense_state": model.state_dict()}), ac.rank_fraction)
    attack = atmc.task.attack_config(ac)
    knobs = atmc.ATMCKnobs(budget=atmc.budget_for(1 / ratio, bits, n), bits=bits,
                           steps=atmc_steps(cfg.steps, attack.steps),
                           batch_size=cfg.batch_size,
                           lr=atmc.lr_of(ac, "atmc-8"), weight_decay=0.0,
                           quant_fraction=ac.quant_fraction, rho=ac.rho,
                           admm_every=ac.admm_every, attack=attack)
    data = {k: task["data"][k] for k in ("x_train", "y_train")}
    atmc.compress_adversarially(work, data, knobs, derive_seed(seed, "atmc"))
    factors = {}
    with torch.no_grad():
        for (name, layer), (_, _, fact) in zip(prunable_layers(model),
                                               atmc.method.compressible_layers(work),
                                               strict=True):
            layer.weight.copy_(fact.weight())
            layer.bias.copy_(fact.bias)
            for f, t in zip("UVC", fact.factors(), strict=True):
                factors[f"{name}.{f}"] = t.detach().clone()
    return {"bits": [bits] * len(prunable_layers(model)), "factors": factors,
            "factor_bits": bits, "l0_budget": knobs.budget}


def size_cost_model(model: nn.Module, example: torch.Tensor) -> CostModel:
    """ECC's bilinear cost ``sum_j c_j (s_{j-1}/u_{j-1}) (s_j/u_j)`` with ``c_j`` the dense
    weights of layer ``j`` over all weights: the exact weight count of a network at widths
    ``s`` (a layer's weights are the product of its two widths), relative to dense."""
    upper = [example.shape[1]] + [m.weight.shape[0] for _, m in prunable_layers(model)]
    sizes = [m.weight.numel() for _, m in prunable_layers(model)]
    return CostModel("bilinear", tuple(upper), tuple(w / sum(sizes) for w in sizes), 0.0)


def ecc_compress(model: nn.Module, task, cfg, ratio: float, seed: int) -> dict[str, Any]:
    """``ecc.ecc_compress`` with the ecc chapter's knobs to the size budget ``N / ratio``
    (32-bit values): the bilinear model is the exact size (``size_cost_model``), the run's
    measurement the weights of the extracted network."""
    example = task["data"]["x_test"][:2]
    n = n_weights(model)
    teacher = dense_model(task).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    cost = size_cost_model(model, example)

    def measure(m: nn.Module) -> float:
        return n_weights(extract_input_pruned(m, example)) / n

    knobs = ecc.experiment.knobs_of(ecc.CONFIGS[cfg.ecc_scale])
    out = ecc.ecc_compress(model, teacher, _batches(task, cfg, seed, "ecc"),
                           width_boundaries(model, example), list(cost.upper), cost,
                           1 / ratio, cfg.steps, knobs, measure, desc="ecc",
                           show_progress=False)
    return {"bits": [32] * len(prunable_layers(model)), "ecc_met_in_run": out["met_budget"],
            "ecc_stopped_at": out["stopped_at"], "widths": out["widths"]}


def gs_compress(model: nn.Module, task, cfg, ratio: float, seed: int) -> dict[str, Any]:
    """GAN Slimming's slimming + 8-bit quantization on the classifier (``slimming``), with
    the gan_slimming chapter's knobs and its split of the steps into slimming and
    fine-tuning, ``8 x weights <= 32 N / ratio``."""
    gs = gan_slimming.CONFIGS[cfg.gs_scale]
    ft = round(cfg.steps * gs.finetune_steps / (gs.gs_steps + gs.finetune_steps))
    budget = math.floor(32 * n_weights(model) / ratio) // gs.bits
    out = gs_classifier(model, dense_model(task).eval(), task["data"]["x_train"],
                        steps=cfg.steps - ft, finetune_steps=ft, batch_size=cfg.batch_size,
                        lr_w=gs.lr_w, lr_gamma=gs.lr_gamma, rho=gs.rho, beta=gs.beta,
                        bits=gs.bits, max_weights=budget, seed=seed)
    return {"bits": [gs.bits] * len(prunable_layers(model)), "gamma_zero": out["gamma_zero"],
            "keep": out["keep"]}


COMPRESSORS = {"global-magnitude": global_magnitude, "channel-magnitude": channel_magnitude,
               "joint-admm": joint_admm, "energy-projection": energy_projection,
               "atmc": atmc_compress, "ecc": ecc_compress, "gs-slimming": gs_compress}


def deployable_of(model: nn.Module, method: str, example: torch.Tensor) -> nn.Module:
    """The network a device stores and runs: physically smaller for the structured
    methods (output channels: ``lib.sparse.extract``; ECC's input channels:
    ``lib.sparse.input_channels``), else the baked full-size network."""
    kind = EXTRACTED.get(method)
    if kind == "output":
        return deploy.extracted_form(model, example)
    if kind == "input":
        return extract_input_pruned(deploy.dense_form(model), example).eval()
    return model


# ----------------------------------------------------------------------------- measuring
def pack_specs(model: nn.Module, bits: list[int], index_bits: int) -> dict[str, PackSpec]:
    """The smallest storable format of each layer at its bits (``best_spec``)."""
    return {f"{name}.weight": best_spec(layer.weight.detach(), b, index_bits)
            for (name, layer), b in zip(prunable_layers(model), bits, strict=True)}


def packed_size(model: nn.Module, bits: list[int], index_bits: int) -> dict[str, Any]:
    """Write the model with ``lib.quant.pack`` and report its bytes against the accounting."""
    specs = pack_specs(model, bits, index_bits)
    state = model.state_dict()
    weights = {k: state[k] for k in specs}
    extras = {k: v for k, v in state.items() if k not in specs}
    with tempfile.TemporaryDirectory() as tmp:
        rep = write_packed(Path(tmp) / "model.pack", weights, specs, extras)
    return {"file_bytes": rep.file_bytes, "packed_accounted_bits": rep.accounted_bits,
            "header_bytes": rep.header_bytes, "extra_bytes": rep.extra_bytes,
            "padding_bits": rep.padding_bits,
            "index": [s.index for s in specs.values()]}


def packed_factors(model: nn.Module, factors: dict[str, torch.Tensor], bits: int,
                   index_bits: int) -> dict[str, Any]:
    """ATMC's stored form: the factors ``U, V, C`` of every layer at ``bits`` (sparse
    index by ``best_spec``), the biases as extras."""
    specs = {k: best_spec(v, bits, index_bits) for k, v in factors.items()}
    extras = {f"{name}.bias": m.bias.detach() for name, m in prunable_layers(model)}
    with tempfile.TemporaryDirectory() as tmp:
        rep = write_packed(Path(tmp) / "model.pack", factors, specs, extras)
    return {"file_bytes": rep.file_bytes, "packed_accounted_bits": rep.accounted_bits,
            "header_bytes": rep.header_bytes, "extra_bytes": rep.extra_bytes,
            "padding_bits": rep.padding_bits, "index": [s.index for s in specs.values()]}


def pgd_correct(model: nn.Module, data: dict[str, torch.Tensor], cfg: HeadToHeadConfig
                ) -> torch.Tensor:
    """0/1 per item under the atmc chapter's evaluation PGD, on the first ``n_pgd`` test
    images (the same items and attack seed for every model: paired)."""
    n = min(cfg.n_pgd, len(data["y_test"]))
    attack = PGDConfig(eps=cfg.pgd_eps, steps=cfg.pgd_steps)
    return robust_correct(model.eval(), data["x_test"][:n], data["y_test"][:n], "pgd", attack,
                          seed=derive_seed(0, "pgd-eval")).to(torch.float64)


def measure(model: nn.Module, info: dict[str, Any], task, cfg, method: str) -> dict[str, Any]:
    """Accuracy (clean, PGD), sizes, modelled energy and the int8 form's accuracy of a
    baked model."""
    data = task["data"]
    geoms = layer_geometries(model, data["x_test"][:1])
    layers = prunable_layers(model)
    deployable = deployable_of(model, method, data["x_test"][:2])
    # values only, as the papers; the structured methods store the smaller network
    paper = model_size_bits(prunable_layers(deployable), info["bits"]).total_bits
    if "factors" in info:  # ATMC stores U, V, C: its l0 budget counts their nonzeros
        paper = info["factor_bits"] * sum(int((t != 0).sum()) for t in info["factors"].values())
        packed = packed_factors(model, info["factors"], info["factor_bits"], cfg.index_bits)
    else:
        packed = packed_size(deployable, info["bits"], cfg.index_bits)
    int8 = deploy.int8_form(deployable, data["x_train"][:cfg.calibration])
    with torch.no_grad():
        int8_ok = (int8(data["x_test"]).argmax(1) == data["y_test"]).to(torch.float64)
    return {"correct": correct(model, data["x_test"], data["y_test"]),
            "pgd_correct": pgd_correct(model, data, cfg),
            "int8_correct": int8_ok, "paper_bits": paper, "nnz": sum(
                int((m.weight != 0).sum()) for _, m in layers),
            "energy": systolic_energy(model, geoms), "int8_onnx_bytes": int8.onnx_bytes,
            **packed}


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def compress(cfg: HeadToHeadConfig, method: str, ratio: float, seed: int,
             cache: ArtifactCache | None = None) -> dict[str, Any]:
    """One compressed model (cached): its baked state and every measurement but latency."""
    cache = cache or ArtifactCache()
    task = task_of(cfg, cache)
    config = {"config": cfg, "method": method, "ratio": ratio, "seed": seed}

    def build() -> dict[str, Any]:
        seed_everything(derive_seed(seed, "head-to-head", method))
        model = dense_model(task)
        t0 = time.process_time()
        if method == "dense":
            info = {"bits": [32] * len(prunable_layers(model))}
        else:
            info = COMPRESSORS[method](model, task, cfg, ratio, seed)
        cpu_s = time.process_time() - t0
        model.eval()
        return {"method": method, "ratio": ratio, "seed": seed, "state": state_of(model),
                "info": info, "compress_cpu_s": cpu_s,
                **measure(model, info, task, cfg, method)}

    return cache.get_or_create("head-to-head-model", config, build,
                               depends_on=[task["dense_key"]])


def model_of(run: dict[str, Any]) -> nn.Sequential:
    net = lenet5_like()
    net.load_state_dict(run["state"])
    return net.eval()


def forms_of(run: dict[str, Any], task, cfg) -> dict[str, nn.Module]:
    """The deployable forms of one compressed model that the comparison times."""
    model = model_of(run)
    x = task["data"]
    out: dict[str, nn.Module] = {}
    for form in FORMS[run["method"]]:
        if form == "dense":
            out[form] = deploy.dense_form(model)
        elif form == "csr":
            out[form] = deploy.csr_form(model)
        elif form == "extracted":
            out[form] = deployable_of(model, run["method"], x["x_test"][:2])
        else:
            base = deployable_of(model, run["method"], x["x_test"][:2])
            out[form] = (deploy.onnx_form(base, x["x_test"][:1]) if form == "onnx" else
                         deploy.int8_form(base, x["x_train"][:cfg.calibration]))
    return out


def _quiet_onnx():
    logging.getLogger().setLevel(logging.ERROR)


def runs_of(cfg: HeadToHeadConfig, cache: ArtifactCache | None = None) -> list[dict[str, Any]]:
    """Every (method, ratio, seed) model, plus the dense reference (ratio 1)."""
    cache = cache or ArtifactCache()
    _quiet_onnx()
    runs = [compress(cfg, "dense", 1.0, 0, cache)]
    for method in cfg.methods:
        for ratio in cfg.ratios:
            runs += [compress(cfg, method, ratio, s, cache) for s in cfg.seeds]
    return runs


def time_all(cfg: HeadToHeadConfig, runs: list[dict[str, Any]], task) -> dict[str, dict]:
    """Latency of every deployable form of every model, all interleaved in one run."""
    forms, x = {}, task["data"]["x_test"][:cfg.latency_batch].contiguous()
    for r in runs:
        for form, module in forms_of(r, task, cfg).items():
            forms[f"{r['method']}|{r['ratio']:g}|{r['seed']}|{form}"] = module
    return deploy.latencies(forms, x, rounds=cfg.latency_rounds, number=cfg.latency_number)


def run(cfg: HeadToHeadConfig, seed: int = 0, cache: ArtifactCache | None = None
        ) -> dict[str, Any]:
    """Compress (cached), time (not cached: a measurement of this machine), tabulate."""
    cache = cache or ArtifactCache()
    task = task_of(cfg, cache)
    runs = runs_of(cfg, cache)
    t0 = time.process_time()
    timing = time_all(cfg, runs, task)
    return {"runs": runs, "latency": timing, "timing_cpu_s": time.process_time() - t0,
            "dense_accuracy": task["dense_accuracy"], "n_weights": n_weights(model_of(runs[0])),
            "n_test": len(task["data"]["y_test"])}


# ----------------------------------------------------------------------------- tables
def _ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    iv = paired_bootstrap(a, b, n_boot=2000)
    return iv.estimate, iv.lo, iv.hi


def summary_rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (method, ratio): accuracy with its paired interval against the dense
    model, accounted and packed sizes, bytes on disk, modelled energy, and the median
    latency of each deployable form (median over seeds of per-seed medians, and the IQR
    of the timing blocks pooled over seeds)."""
    runs = out["runs"]
    dense = next(r for r in runs if r["method"] == "dense")
    dense_ok = np.asarray(dense["correct"], dtype=np.float64)
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["method"], r["ratio"]), []).append(r)
    rows = []
    for (method, ratio), rs in groups.items():
        ok = np.stack([np.asarray(r["correct"], dtype=np.float64) for r in rs])
        ok8 = np.stack([np.asarray(r["int8_correct"], dtype=np.float64) for r in rs])
        est, lo, hi = _ci(ok, np.broadcast_to(dense_ok, ok.shape))
        pgd = np.stack([np.asarray(r["pgd_correct"], dtype=np.float64) for r in rs])
        dense_pgd = np.asarray(dense["pgd_correct"], dtype=np.float64)
        p_est, p_lo, p_hi = _ci(pgd, np.broadcast_to(dense_pgd, pgd.shape))
        row = {"method": method, "ratio": ratio, "seeds": len(rs),
               "accuracy": float(ok.mean()), "acc_vs_dense": est, "acc_vs_dense_low": lo,
               "acc_vs_dense_high": hi, "int8_accuracy": float(ok8.mean()),
               "pgd_accuracy": float(pgd.mean()), "pgd_vs_dense": p_est,
               "pgd_vs_dense_low": p_lo, "pgd_vs_dense_high": p_hi,
               "paper_bytes": float(np.mean([r["paper_bits"] for r in rs])) / 8,
               "packed_bytes": float(np.mean([r["packed_accounted_bits"] for r in rs])) / 8,
               "file_bytes": float(np.mean([r["file_bytes"] for r in rs])),
               "file_bytes_min": float(min(r["file_bytes"] for r in rs)),
               "file_bytes_max": float(max(r["file_bytes"] for r in rs)),
               "energy": float(np.mean([r["energy"] for r in rs])),
               "energy_vs_dense": float(np.mean([r["energy"] for r in rs])) / dense["energy"],
               "met_budget": all(meets_budget(r, out["n_weights"]) for r in rs)}
        for form in FORMS[method]:
            keys = [f"{method}|{ratio:g}|{r['seed']}|{form}" for r in rs]
            stats = [out["latency"][k] for k in keys]
            blocks = np.concatenate([s["blocks_ms"] for s in stats])
            row[f"{form}_ms"] = float(np.median([s["median_ms"] for s in stats]))
            row[f"{form}_iqr_ms"] = float(np.subtract(*np.percentile(blocks, [75, 25])))
        rows.append(row)
    return rows


def meets_budget(run: dict[str, Any], n: int) -> bool:
    """Whether a model met its budget: the papers' accounted size ``<= 32 N / ratio`` (the
    energy method: its modelled energy ``<=`` its energy budget)."""
    if run["method"] == "dense":
        return True
    if run["method"] == "energy-projection":
        return run["energy"] <= run["info"]["energy_budget"] * (1 + 1e-9)
    return run["paper_bits"] <= math.floor(32 * n / run["ratio"])


def metrics_of(out: dict[str, Any]) -> dict[str, float]:
    """Flat metrics for the record: per method and ratio."""
    m: dict[str, float] = {"dense_accuracy": out["dense_accuracy"]}
    for r in summary_rows(out):
        tag = f"{r['method']}_{r['ratio']:g}x".replace("-", "_")
        for k, v in r.items():
            if k not in ("method", "ratio") and isinstance(v, (int, float)):
                m[f"{tag}_{k}"] = float(v)
    return m


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and accuracy
    (higher), in order of cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
