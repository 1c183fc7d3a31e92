"""Compression basics, the primitives: pruning rules, quantizers and what "N x smaller" means.

* **pruned** to a sparsity ``s`` by three rules (``prune``), each followed by a short
  fine-tune with the masks fixed (a ``Mask`` parametrization zeroes the pruned weights'
  gradients): layer-wise magnitude (every layer loses the fraction ``s`` of its smallest
  ``|w|``), global magnitude (one threshold ``|w| > tau`` for the whole model) and channel
  pruning (every hidden layer loses the fraction ``s`` of its output channels of smallest
  norm);
* **quantized** to ``b`` bits (``quantize``): ``2^b`` levels a layer, by a uniform symmetric
  per-channel grid (post-training, or quantization-aware through the straight-through
  estimator) or by 1-D k-means weight sharing (``2^b`` centres fitted to all the weights of
  the dense layer: its zero is not free, so it is not given a level of its own);
* **sized** (``size_examples``): dense float32 is ``32 n`` bits; ``b``-bit values of
  ``nnz`` nonzeros are ``b * nnz`` bits, plus the index that says where the nonzeros are.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from lib.core import IndexBatches
from lib.core.train import supervised_step, train_loop
from lib.quant import attach_fake_quant, kmeans_quantize, model_size_bits
from lib.sparse import (
    attach_mask,
    channel_mask,
    global_magnitude_masks,
    magnitude_mask,
    prunable_layers,
)
from lib.sparse.extract import attach_channel_mask
from lib.vision import small_cnn

PRUNING_METHODS = ("layer-wise magnitude", "global magnitude", "channel (structured)")


def make_model(cfg: Any) -> nn.Sequential:
    """The chapter's CNN (``cfg.channels``, ``cfg.hidden``, ``cfg.image_size``)."""
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
        elif method == "k-means":  # 2^b centres over all weights: b bits a weight
            with torch.no_grad():
                m.weight.copy_(kmeans_quantize(m.weight, bits, fixed_zero=False).weight)
        else:
            raise ValueError(f"unknown quantizer {method!r}; valid: uniform, k-means")
    return model


def size_examples(model: nn.Module) -> list[dict[str, Any]]:
    """What "N x smaller" means, on ``model``'s conv/linear weights: the same weights
    stored densely, quantized, pruned, and both, with and without the index overhead."""
    layers = prunable_layers(model)
    weights = [m.weight.detach() for _, m in layers]
    pruned = [w * magnitude_mask(w, 0.9) for w in weights]
    # a relative index stores filler zeros, so the 2^4 codes must hold a 0: k-means with
    # 2^4 - 1 nonzero centres and the zero (not 2^4 nonzero centres plus a free zero)
    shared = [kmeans_quantize(w, 4, zero_counts=True).weight for w in pruned]
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
    add("90 % pruned, 4-bit k-means values (15 centres + 0) + relative index + codebook",
        shared, 4, index="relative", index_bits=4, codebook=True)
    return rows
