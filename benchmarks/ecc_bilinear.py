"""How well the bilinear cost model predicts this machine, and how noisy the measurement is.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/ecc_bilinear.py [--samples 150]
        [--batch 64] [--clock cpu|wall] [--model lenet5_like]

Measures random-width variants of the network (each group interleaved with the dense one),
fits the bilinear, linear-in-width and MAC-count models on 80% and prints their held-out
mean relative errors, then the spread of repeated measurements of the dense network
(interquartile range over median) on both clocks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lib.energy import (  # noqa: E402
    compare_cost_models,
    layer_costs,
    measure_latency,
    random_widths,
)
from lib.papers.ecc.task import measure_width_samples, width_family  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=150)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--model", default="lenet5_like")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    family = width_family(args.model, 10)
    x = torch.randn(args.batch, *family.input_shape)
    start = time.perf_counter()
    widths = random_widths(family.upper, args.samples, np.random.default_rng(0))
    samples = measure_width_samples(family, widths, x, group=6, rounds=args.rounds, number=3,
                                    warmup=2, threads=1, clock=args.clock)
    macs = [float(c.macs) for c in layer_costs(family.build(family.upper),
                                               torch.zeros(1, *family.input_shape))]
    out = compare_cost_models(widths, samples["ratio"], family.upper, layer_macs=macs)
    print(f"{args.samples} variants of {args.model} at batch {args.batch}, clock={args.clock} "
          f"({time.perf_counter() - start:.0f} s)")
    for kind, err in out["errors"].items():
        print(f"  held-out mean relative error {kind:9s} {100 * np.mean(err):5.1f} %  "
              f"(median {100 * np.median(err):.1f} %, {len(err)} variants)")
    print(f"  median within-measurement spread (IQR / median) "
          f"{100 * statistics.median(samples['relative_spread']):.1f} %")
    dense = family.build(family.upper)
    for clock in ("cpu", "wall"):
        reps = [measure_latency(dense, x, repeats=7, number=3, clock=clock) for _ in range(5)]
        med = [r.median_s for r in reps]
        within = statistics.median(r.relative_spread for r in reps)
        between = (max(med) - min(med)) / statistics.median(med)
        print(f"  dense, clock={clock}: median {1e3 * statistics.median(med):.2f} ms, spread "
              f"within a measurement {100 * within:.1f} %, between measurements "
              f"{100 * between:.1f} %")


if __name__ == "__main__":
    main()
