"""Time the pairwise AUC sums of lib/papers/robust_pu/method.py: fast paths vs the n+ x n_u matrix.

    python benchmarks/robust_pu_pairsum.py [--sizes 1000 10000 100000]

Prints, for n+ = n_u = n, the seconds per call (per-positive sums and both score
gradients) of the O(n) square loss, the O(n log n) squared hinge, the blocked O(n^2)
logistic loss, and the explicit O(n^2) matrix (skipped above 20000, where it needs
gigabytes). Timings on a shared machine are upper bounds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lib.papers.robust_pu import (
    logistic_pair_terms,
    pair_terms_bruteforce,
    square_pair_terms,
    squared_hinge_pair_terms,
)


def seconds(fn, *args, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'n':>8} {'square O(n)':>12} {'sq.hinge':>12} {'logistic':>12} {'matrix':>12}")
    for n in args.sizes:
        a, b, p = rng.normal(size=n), rng.normal(size=n), np.ones(n)
        sq = seconds(square_pair_terms, a, b, p)
        sh = seconds(squared_hinge_pair_terms, a, b, p)
        lg = seconds(logistic_pair_terms, a, b, p, repeat=1) if n <= 30000 else float("nan")
        bf = (seconds(pair_terms_bruteforce, a, b, p, "square", repeat=1) if n <= 20000
              else float("nan"))
        print(f"{n:>8} {sq:>12.2e} {sh:>12.2e} {lg:>12.2e} {bf:>12.2e}")


if __name__ == "__main__":
    main()
