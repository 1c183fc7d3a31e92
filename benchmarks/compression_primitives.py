"""Speed of the compression primitives on this machine (figures, not a test).

    python benchmarks/compression_primitives.py [--quick]

Targets (issue 3): global magnitude top-k and the weighted sparse projection on 10 M
weights under 1 s each; fake-quant forward+backward under 1.5x the plain layer; k-means
4-bit quantization of a 1 M-weight layer (reported). Times are the median of a few
repeats, on however many threads torch uses here (printed).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from lib.quant import attach_fake_quant, kmeans_quantize, kmeans_quantize_all_bits
from lib.sparse import global_magnitude_masks, weighted_sparse_masks


class Timing(float):
    """Median wall seconds, with the median CPU seconds of this process beside it (the CPU
    time is what a busy, shared machine inflates least)."""

    cpu: float

    def __str__(self) -> str:
        return f"{float(self):.3f} s wall ({self.cpu:.3f} s CPU)"


def timed(fn, repeats: int) -> Timing:
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    out = Timing(statistics.median(walls))
    out.cpu = statistics.median(cpus)
    return out


def bench_projections(n_weights: int, repeats: int) -> None:
    g = torch.Generator().manual_seed(0)
    sizes = [n_weights // 10] * 10  # ten layers
    ws = [torch.randn(s, generator=g) * (0.5 + i / 10) for i, s in enumerate(sizes)]
    bits = [8, 6, 4, 4, 3, 3, 2, 2, 2, 1]
    t = timed(lambda: global_magnitude_masks(ws, 0.9), repeats)
    print(f"global magnitude top-k, {n_weights / 1e6:.0f} M weights, keep 10 %: {t} "
          f"(target < 1 s)")
    budget = 0.1 * sum(b * s for b, s in zip(bits, sizes, strict=True))
    t = timed(lambda: weighted_sparse_masks(ws, bits, budget), repeats)
    print(f"weighted sparse projection (knapsack, per-layer bits), {n_weights / 1e6:.0f} M "
          f"weights: {t} (target < 1 s)")


def _fwd_bwd(layer: nn.Module, x: torch.Tensor):
    def run():
        layer.zero_grad(set_to_none=True)
        layer(x).sum().backward()
    return run


def bench_fake_quant(repeats: int) -> None:
    torch.manual_seed(0)
    cases = {
        "Conv2d(64, 64, 3) on 32x64x32x32": (lambda: nn.Conv2d(64, 64, 3, padding=1),
                                             torch.randn(32, 64, 32, 32)),
        "Linear(1024, 1024) on 256x1024": (lambda: nn.Linear(1024, 1024),
                                           torch.randn(256, 1024)),
    }
    for name, (make, x) in cases.items():
        plain, quant = make(), make()
        quant.load_state_dict(plain.state_dict())
        attach_fake_quant(quant, 4, per_channel=True)
        for layer in (plain, quant):  # warm-up
            _fwd_bwd(layer, x)()
        t_plain = timed(_fwd_bwd(plain, x), repeats)
        t_quant = timed(_fwd_bwd(quant, x), repeats)
        print(f"fake-quant 4-bit per-channel fwd+bwd, {name}: {t_quant * 1e3:.1f} ms vs plain "
              f"{t_plain * 1e3:.1f} ms = {t_quant / t_plain:.2f}x wall, "
              f"{t_quant.cpu / t_plain.cpu:.2f}x CPU (target < 1.5x)")


def bench_kmeans(n_weights: int, repeats: int) -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n_weights, generator=g) * 0.05
    t = timed(lambda: kmeans_quantize(w, 4), repeats)
    print(f"k-means 4-bit (16 nonzero centres + 0), {n_weights / 1e6:.0f} M weights: {t}")
    w[w.abs() < 0.05] = 0  # a pruned layer: about 32 % nonzeros
    t = timed(lambda: kmeans_quantize_all_bits(w, list(range(1, 9))), 1)
    print(f"k-means at every bit-width 1..8 (one dynamic programme), {n_weights / 1e6:.0f} M "
          f"weights, {int((w != 0).sum()) / 1e3:.0f} k nonzeros: {t}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repeat")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice; 1 is steadier on a "
                             "machine shared with other jobs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else 3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_projections(1_000_000 if args.quick else 10_000_000, repeats)
    bench_fake_quant(repeats)
    bench_kmeans(100_000 if args.quick else 1_000_000, repeats)


if __name__ == "__main__":
    main()
