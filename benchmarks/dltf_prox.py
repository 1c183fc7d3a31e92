"""Benchmark: the exact (k,2)-norm prox vs a generic conic solver, as the length m grows.

    python benchmarks/dltf_prox.py [--max-m 1000000] [--generic-max-m 10000] [--repeats 3]

Prints the best-of-``repeats`` time per prox for m = 1e3 .. 1e6 (numpy single vector and
torch on CPU), the fitted exponent of time ~ m^p, and the speed-up over the generic
solver (Clarabel on the second-order-cone form, see ``prox_k2_generic``) at m = 1e4,
with the objective gap between the two solutions. Inputs: Gaussian entries, k = m/10,
lambda = sqrt(k)/2. Times on a shared machine are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pandas as pd  # noqa: E402

from lib.papers import dltf  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-m", type=int, default=1_000_000)
    parser.add_argument("--generic-max-m", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ms = tuple(m for m in (1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
               if m <= args.max_m)
    rows = pd.DataFrame(dltf.prox_timing(ms, args.generic_max_m, args.repeats))
    table = rows.pivot(index="m", columns="method", values="seconds")
    pd.set_option("display.width", 120)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
          f"(one thread used); seconds per prox, best of {args.repeats}")
    print(table.to_string(float_format=lambda s: f"{s:.3g}"))
    for method in ("prox (numpy, ours)", "prox (torch, ours)", "generic SOCP solver"):
        col = table[method].dropna()
        if len(col) >= 2:
            print(f"fitted exponent, {method}: time ~ m^{dltf.fitted_slope(col.index, col):.2f}"
                  f"  (m = {col.index.min():,} .. {col.index.max():,})")
    at = 10_000
    if at in table.index and pd.notna(table.loc[at, "generic SOCP solver"]):
        gap = rows[(rows.m == at) & (rows.method == "generic SOCP solver")]
        ratio = table.loc[at, "generic SOCP solver"] / table.loc[at, "prox (numpy, ours)"]
        print(f"speed-up at m = {at:,}: {ratio:.0f}x over the generic solver "
              f"(target >= 100x); objective(generic) - objective(ours) = "
              f"{float(gap['objective gap vs ours'].iloc[0]):.2e}")


if __name__ == "__main__":
    main()
