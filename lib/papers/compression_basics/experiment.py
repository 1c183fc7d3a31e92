"""The compression basics chapter's experiment: configs per scale, the trained dense CNN,
the pruning and bit-width sweeps and the channel-extraction demonstration (cached).

A CNN (``lib.vision.small_cnn``) is trained on scikit-learn's digits (upsampled to 16x16),
then pruned, quantized, sized and shrunk with the primitives of ``method.py``: the
channel-pruned network is extracted into a smaller dense one, whose MACs and modelled
energy drop with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lib.core import ArtifactCache, ScaleConfigs, seed_everything
from lib.energy import energy_pj, layer_costs, total_macs
from lib.sparse import extract_channel_pruned, prunable_layers, sparsity_of
from lib.vision import digits_images

from .method import PRUNING_METHODS, accuracy, make_model, prune, quantize, train


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
