"""Compression basics (the Foundations chapter on pruning, quantization and size).

Not a paper: the shared vocabulary of the compression chapters, measured on one small
model. A CNN (``lib.vision.small_cnn``) is trained on scikit-learn's digits (upsampled to
16x16), then

* **pruned** to a sparsity ``s`` by three rules, each followed by a short fine-tune with the
  masks fixed (a ``Mask`` parametrization zeroes the pruned weights' gradients):
  layer-wise magnitude (every layer loses the fraction ``s`` of its smallest ``|w|``),
  global magnitude (one threshold ``|w| > tau`` for the whole model) and channel pruning
  (every hidden layer loses the fraction ``s`` of its output channels of smallest norm);
* **quantized** to ``b`` bits by a uniform symmetric per-channel grid (post-training, and
  with quantization-aware fine-tuning through the straight-through estimator) and by
  k-means weight sharing with a zero centre;
* **sized**: dense float32 is ``32 n`` bits; ``b``-bit values of ``nnz`` nonzeros are
  ``b * nnz`` bits, plus the index that says where the nonzeros are;
* **shrunk**: the channel-pruned network is extracted into a smaller dense one, whose MACs
  and modelled energy drop with it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lib.core import ArtifactCache, IndexBatches, ScaleConfigs, seed_everything
from lib.core.train import supervised_step, train_loop
from lib.energy import energy_pj, layer_costs, total_macs
from lib.quant import attach_fake_quant, kmeans_quantize, model_size_bits
from lib.sparse import (
    attach_mask,
    channel_mask,
    extract_channel_pruned,
    global_magnitude_masks,
    magnitude_mask,
    prunable_layers,
    sparsity_of,
)
from lib.sparse.extract import attach_channel_mask
from lib.vision import digits_images, small_cnn

PRUNING_METHODS = ("layer-wise magnitude", "global magnitude", "channel (structured)")


@dataclass(frozen=True)
class CompressionBasicsConfig:
    """Knobs of the Foundations compression chapter."""

    image_size: int
    channels: tuple[int, int]
    hidden: int
    train_steps: int
    batch_size: int
    lr: float
    sparsities: tuple[float, ...]
    finetune_steps: int
    finetune_lr: float
    bits: tuple[int, ...]


CONFIGS = ScaleConfigs(
    smoke=CompressionBasicsConfig(image_size=16, channels=(8, 16), hidden=32, train_steps=150,
                                  batch_size=64, lr=0.05, sparsities=(0.5, 0.9),
                                  finetune_steps=20, finetune_lr=0.01, bits=(2, 4)),
    tutorial=CompressionBasicsConfig(image_size=16, channels=(16, 32), hidden=64,
                                     train_steps=1200, batch_size=64, lr=0.05,
                                     sparsities=(0.5, 0.7, 0.8, 0.9, 0.95, 0.98),
                                     finetune_steps=150, finetune_lr=0.01,
                                     bits=(1, 2, 3, 4, 6, 8)),
    full=CompressionBasicsConfig(image_size=16, channels=(32, 64), hidden=128, train_steps=4000,
                                 batch_size=64, lr=0.05,
                                 sparsities=(0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99),
                                 finetune_steps=600, finetune_lr=0.01,
                                 bits=(1, 2, 3, 4, 5, 6, 7, 8)),
)


def make_model(cfg: CompressionBasicsConfig) -> nn.Sequential:
    return small_cnn(cfg.channels, cfg.hidden, cfg.image_size)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def train(model: nn.Module, data: dict[str, torch.Tensor], steps: int, lr: float,
          batch_size: int, seed: int) -> float:
    """SGD with momentum and a cosine schedule; masks and quantizers on the weights stay
    in the forward pass (so pruned weights get no gradient, quantized ones an STE one).
    Returns the wall time."""
    if steps == 0:
        return 0.0
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    batches = IndexBatches(len(data["y_train"]), batch_size, seed)

    def batch_fn(step: int):
        idx = batches.indices(step)
        return data["x_train"][idx], data["y_train"][idx]

    def loss_fn(m: nn.Module, batch) -> torch.Tensor:
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    step_fn = supervised_step(model, opt, loss_fn, batch_fn, scheduler=sched)
    return train_loop(step_fn, steps, state={}, desc="train", log_every=0).wall_time_s


def prune(model: nn.Module, method: str, sparsity: float) -> nn.Module:
    """Attach the masks of ``method`` at ``sparsity`` to a copy of ``model``."""
    model = copy.deepcopy(model)
    layers = prunable_layers(model)
    if method == "layer-wise magnitude":
        for _, m in layers:
            attach_mask(m, magnitude_mask(m.weight, sparsity))
    elif method == "global magnitude":
        for (_, m), mask in zip(layers, global_magnitude_masks(layers, sparsity), strict=True):
            attach_mask(m, mask)
    elif method == "channel (structured)":
        for _, m in layers[:-1]:  # the output layer keeps its classes
            keep = channel_mask(m.weight, sparsity)[(slice(None),) + (0,) * (m.weight.dim() - 1)]
            attach_channel_mask(m, keep > 0)
    else:
        raise ValueError(f"unknown pruning method {method!r}; valid: {', '.join(PRUNING_METHODS)}")
    return model


def quantize(model: nn.Module, method: str, bits: int) -> nn.Module:
    """A copy of ``model`` with every conv/linear weight quantized to ``bits``."""
    model = copy.deepcopy(model)
    for _, m in prunable_layers(model):
        if method == "uniform":
            attach_fake_quant(m, bits, symmetric=True, per_channel=True)
        elif method == "k-means":
            with torch.no_grad():
                m.weight.copy_(kmeans_quantize(m.weight, bits).weight)
        else:
            raise ValueError(f"unknown quantizer {method!r}; valid: uniform, k-means")
    return model


def trained_dense(cfg: CompressionBasicsConfig, seed: int = 0,
                  cache: ArtifactCache | None = None) -> dict[str, Any]:
    """The trained dense CNN from the artifact cache (trained once)."""

    def build() -> dict[str, Any]:
        seed_everything(seed)
        data = digits_images(seed, cfg.image_size)
        model = make_model(cfg)
        seconds = train(model, data, cfg.train_steps, cfg.lr, cfg.batch_size, seed)
        return {"state_dict": model.state_dict(), "train_seconds": seconds,
                "test_accuracy": accuracy(model, data["x_test"], data["y_test"])}

    return (cache or ArtifactCache()).get_or_create(
        "compression-basics-dense", {"config": cfg, "seed": seed}, build)



def sweeps(cfg: CompressionBasicsConfig, seed: int = 0,
           cache: ArtifactCache | None = None) -> dict[str, Any]:
    """Sparsity and bit-width sweeps (cached): one row per (method, level)."""
    dense_art = trained_dense(cfg, seed, cache)

    def build() -> dict[str, Any]:
        data = digits_images(seed, cfg.image_size)
        dense = make_model(cfg)
        dense.load_state_dict(dense_art["state_dict"])
        x1 = data["x_test"][:1]
        pruning = []
        for method in PRUNING_METHODS:
            for s in cfg.sparsities:
                seed_everything(seed)
                model = prune(dense, method, s)
                one_shot = accuracy(model, data["x_test"], data["y_test"])
                train(model, data, cfg.finetune_steps, cfg.finetune_lr, cfg.batch_size, seed)
                costs = layer_costs(model, x1)
                pruning.append({"method": method, "target_sparsity": s,
                                "sparsity": sparsity_of(model),
                                "accuracy_one_shot": one_shot,
                                "accuracy_finetuned": accuracy(model, data["x_test"],
                                                               data["y_test"]),
                                "effectual_macs": total_macs(costs, effectual=True),
                                "macs": total_macs(costs)})
        quant = []
        for b in cfg.bits:
            for method in ("uniform", "k-means"):
                model = quantize(dense, method, b)
                quant.append({"quantizer": method, "bits": b, "training": "post-training",
                              "accuracy": accuracy(model, data["x_test"], data["y_test"])})
            seed_everything(seed)
            model = quantize(dense, "uniform", b)
            train(model, data, cfg.finetune_steps, cfg.finetune_lr, cfg.batch_size, seed)
            quant.append({"quantizer": "uniform", "bits": b, "training": "quantization-aware",
                          "accuracy": accuracy(model, data["x_test"], data["y_test"])})
        return {"pruning": pruning, "quantization": quant}

    return (cache or ArtifactCache()).get_or_create(
        "compression-basics-sweeps", {"config": cfg, "seed": seed}, build)


def size_examples(model: nn.Module) -> list[dict[str, Any]]:
    """What "N x smaller" means, on ``model``'s conv/linear weights: the same weights
    stored densely, quantized, pruned, and both, with and without the index overhead."""
    layers = prunable_layers(model)
    weights = [m.weight.detach() for _, m in layers]
    pruned = [w * magnitude_mask(w, 0.9) for w in weights]
    rows = []

    def add(label: str, ws, bits: int, **kw) -> None:
        rep = model_size_bits(ws, bits, **kw)
        rows.append({"storage": label, "bits_per_value": bits,
                     "nonzeros": sum(r["nnz"] for r in rep.layers),
                     "value_bits": sum(r["value_bits"] for r in rep.layers),
                     "index_bits": sum(r["index_bits"] for r in rep.layers),
                     "codebook_bits": sum(r["codebook_bits"] for r in rep.layers),
                     "total_bits": rep.total_bits, "ratio_vs_float32": rep.ratio})

    add("dense float32", weights, 32)
    add("dense 8-bit", weights, 8)
    add("dense 1-bit (binary)", weights, 1)
    add("90 % pruned, float32 values, no index", pruned, 32)
    add("90 % pruned, 4-bit values, no index (paper accounting)", pruned, 4)
    add("90 % pruned, 4-bit values + bitmask index", pruned, 4, index="bitmask")
    add("90 % pruned, 4-bit values + 4-bit relative index", pruned, 4, index="relative",
        index_bits=4)
    add("90 % pruned, 4-bit k-means values + relative index + codebook", pruned, 4,
        index="relative", index_bits=4, codebook=True)
    return rows


def extraction_demo(cfg: CompressionBasicsConfig, seed: int = 0, sparsity: float = 0.5,
                    cache: ArtifactCache | None = None) -> dict[str, Any]:
    """Channel-prune the dense CNN, fine-tune, extract a smaller dense network, and compare
    parameters, MACs, modelled energy, outputs and accuracy before and after."""
    data = digits_images(seed, cfg.image_size)
    dense = make_model(cfg)
    dense.load_state_dict(trained_dense(cfg, seed, cache)["state_dict"])
    seed_everything(seed)
    masked = prune(dense, "channel (structured)", sparsity)
    train(masked, data, cfg.finetune_steps, cfg.finetune_lr, cfg.batch_size, seed)
    masked.eval()
    small = extract_channel_pruned(masked, data["x_test"][:8])
    x1 = data["x_test"][:1]
    with torch.no_grad():
        diff = (small(data["x_test"]) - masked(data["x_test"])).abs().max()
    out = {"max_abs_output_difference": float(diff)}
    for name, model in (("dense", dense), ("masked", masked), ("extracted", small)):
        costs = layer_costs(model, x1)
        params = sum(m.weight.numel() for _, m in prunable_layers(model))
        out[name] = {"weights": params, "macs": total_macs(costs),
                     "effectual_macs": total_macs(costs, effectual=True),
                     "energy_uj": energy_pj(costs)["total_pj"] / 1e6,
                     "accuracy": accuracy(model, data["x_test"], data["y_test"])}
    return out


# ------------------------------------------------------------------------------ claims
#: compression_basics teaches the primitives; it reproduces no paper's claim.
CLAIMS: list = []
DATA_PARALLEL = False
