"""Latency of the capstone's deployable forms on this CPU, by sparsity and batch size.

``lenet5_like`` (random weights: latency does not depend on their values) globally
magnitude-pruned to each sparsity, run as PyTorch dense, PyTorch CSR (``torch.sparse``),
ONNX Runtime float32 and ONNX Runtime int8, all interleaved in one run per batch size, one
thread. Prints median and IQR per form, with both clocks (the calling thread's CPU time and
the wall clock), so a reader sees where sparse kernels start to pay and how much of the
int8 gain is the runtime rather than the arithmetic.

    python benchmarks/head_to_head_forms.py [--rounds 9] [--number 20]
"""

from __future__ import annotations

import argparse
import logging

import torch

from lib.energy.measure import measure_interleaved
from lib.papers.head_to_head import deploy
from lib.sparse import attach_mask, bake, global_magnitude_masks, prunable_layers
from lib.vision.models import lenet5_like


def pruned(sparsity: float) -> torch.nn.Module:
    torch.manual_seed(0)
    net = lenet5_like().eval()
    layers = prunable_layers(net)
    for (_, layer), mask in zip(layers, global_magnitude_masks(layers, sparsity), strict=True):
        attach_mask(layer, mask.float())
    return bake(net)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--number", type=int, default=20)
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.875, 0.97, 0.99])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    torch.set_num_threads(1)
    calib = torch.randn(64, 1, 28, 28)
    forms = {}
    for s in args.sparsities:
        net = pruned(s)
        forms[f"s={s:g} dense"] = deploy.dense_form(net)
        forms[f"s={s:g} csr"] = deploy.csr_form(net)
        forms[f"s={s:g} onnx"] = deploy.onnx_form(net, calib)
        forms[f"s={s:g} int8"] = deploy.int8_form(net, calib)
    for batch in args.batches:
        x = torch.randn(batch, 1, 28, 28)
        for clock in ("cpu", "wall"):
            stats = measure_interleaved(forms, x, rounds=args.rounds, number=args.number,
                                        warmup=3, threads=1, clock=clock)
            print(f"\nbatch {batch}, {clock} clock: ms per call, median (IQR)")
            for name, st in stats.items():
                print(f"  {name:18s} {1e3 * st.median_s:8.3f} ({1e3 * st.iqr_s:.3f})")


if __name__ == "__main__":
    main()
