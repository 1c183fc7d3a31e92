"""1-D k-means quantization with one centre fixed at zero (weight sharing over nonzeros).

A layer pruned to its nonzeros ``x_1..x_n`` and quantized to ``b`` bits keeps a codebook
``{0, c_1, ..., c_K}``: the zero is free (a pruned weight costs no value bits in a sparse
format) and ``K = 2^b`` nonzero centres are what ``b`` bits can index (the codebook of the
official code of Yang et al., 2020). The centres minimise the distortion

    D(c) = sum_i min_{v in {0, c_1..c_K}} (x_i - v)^2 ,

so a small nonzero may still be rounded to 0.

One dimension makes this solvable exactly. Each centre owns an interval of the sorted
values, and no free centre's interval crosses 0 (a point on the other side of 0 is nearer
to 0 than to it), so the negative and the positive values are two independent problems:
on each side the ``t`` values of largest magnitude form ``j`` contiguous clusters and the
rest go to 0. ``E_j(t) = min_u E_{j-1}(u) + SSE(u, t)`` is the classic 1-D k-means dynamic
programme, whose optimal split ``u`` is monotone in ``t``, so each row costs O(t log t) by
divide and conquer (Gronlund et al., 2017). One pass gives the optimal distortion for
*every* ``K`` up to the largest asked, i.e. for every candidate bit-width at once, which is
what the bit allocation needs. Layers with more than ``max_bins`` nonzeros on a side are
first merged into ``max_bins`` equal-count runs of sorted values (the programme is then
exact over those runs), and the resulting codebook is refined by Lloyd's algorithm on all
values. ``zero_kmeans_1d_exact`` is an independent O(K n^2) programme kept for the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class KMeansQuantized:
    """Result of ``kmeans_quantize``: the quantized weight, its codebook (sorted, holding
    0), the distortion ``|W - Q(W)|^2`` and the bit-width."""

    weight: torch.Tensor
    codebook: torch.Tensor
    distortion: float
    bits: int


def _prefix(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s1 = np.concatenate([[0.0], np.cumsum(xs)])
    s2 = np.concatenate([[0.0], np.cumsum(xs * xs)])
    return s1, s2


def _lloyd_sorted(xs: np.ndarray, s1: np.ndarray, s2: np.ndarray, centres: np.ndarray,
                  iters: int) -> tuple[np.ndarray, float]:
    """Lloyd iterations on sorted ``xs`` with free ``centres`` and a fixed 0."""
    n, k = xs.size, centres.size
    cuts = None
    for _ in range(max(iters, 1)):
        allc = np.concatenate([centres, [0.0]])
        order = np.argsort(allc, kind="stable")
        sc = allc[order]
        bounds = (sc[1:] + sc[:-1]) / 2.0
        new_cuts = np.concatenate([[0], np.searchsorted(xs, bounds, side="left"), [n]])
        if cuts is not None and np.array_equal(new_cuts, cuts):
            break
        cuts = new_cuts
        a, b = cuts[:-1], cuts[1:]
        cnt = b - a
        means = np.where(cnt > 0, (s1[b] - s1[a]) / np.maximum(cnt, 1), sc)
        means[order == k] = 0.0  # the zero centre stays at zero
        updated = np.empty_like(allc)
        updated[order] = means
        centres = updated[:k]
    allc = np.concatenate([centres, [0.0]])
    order = np.argsort(allc, kind="stable")
    sc = allc[order]
    cuts = np.concatenate([[0], np.searchsorted(xs, (sc[1:] + sc[:-1]) / 2.0, side="left"), [n]])
    a, b = cuts[:-1], cuts[1:]
    dist = (s2[b] - s2[a]) - 2 * sc * (s1[b] - s1[a]) + sc * sc * (b - a)
    return centres, float(dist.sum())


def _dc_row(prev: np.ndarray, w: np.ndarray, s: np.ndarray, q: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """``cur[t] = min_{0 <= u < t} prev[u] + SSE(u, t)`` for t = 1..m by divide and conquer,
    all subproblems of one recursion depth evaluated together. Returns ``cur`` and ``arg``."""
    m = w.size - 1
    cur = np.full(m + 1, np.inf)
    arg = np.zeros(m + 1, dtype=np.int64)
    t_lo, t_hi = np.array([1]), np.array([m])
    u_lo, u_hi = np.array([0]), np.array([m - 1])
    while t_lo.size:
        t_mid = (t_lo + t_hi) // 2
        top = np.minimum(u_hi, t_mid - 1)
        length = top - u_lo + 1
        offsets = np.concatenate([[0], np.cumsum(length)[:-1]])
        task = np.repeat(np.arange(t_mid.size), length)
        u = u_lo[task] + np.arange(length.sum()) - offsets[task]
        t = t_mid[task]
        cnt = w[t] - w[u]
        sse = (q[t] - q[u]) - (s[t] - s[u]) ** 2 / cnt
        val = prev[u] + np.maximum(sse, 0.0)
        best = np.minimum.reduceat(val, offsets)
        first = np.flatnonzero(val <= best[task])
        _, pick = np.unique(task[first], return_index=True)
        opt = u[first[pick]]
        cur[t_mid], arg[t_mid] = best, opt
        left = t_lo <= t_mid - 1
        right = t_mid + 1 <= t_hi
        t_lo, t_hi, u_lo, u_hi = (
            np.concatenate([t_lo[left], t_mid[right] + 1]),
            np.concatenate([t_mid[left] - 1, t_hi[right]]),
            np.concatenate([u_lo[left], opt[right]]),
            np.concatenate([opt[left], u_hi[right]]))
    return cur, arg


_DENSE_ROWS = 512  # up to this many runs a row is one broadcast min, beyond it divide and conquer


def _dense_row(prev: np.ndarray, sse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_dc_row`` by brute force over the precomputed ``sse[u, t]`` (``inf`` for u >= t)."""
    table = prev[:, None] + sse
    arg = np.argmin(table, axis=0)
    return table[arg, np.arange(table.shape[1])], arg


def _sse_matrix(w: np.ndarray, s: np.ndarray, q: np.ndarray) -> np.ndarray:
    u, t = np.meshgrid(np.arange(w.size), np.arange(w.size), indexing="ij")
    cnt = w[t] - w[u]
    with np.errstate(divide="ignore", invalid="ignore"):
        sse = (q[t] - q[u]) - (s[t] - s[u]) ** 2 / cnt
    return np.where(u < t, np.maximum(sse, 0.0), np.inf)


def _bins(a: np.ndarray, max_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prefix sums of count, sum and sum of squares over runs of the sorted values ``a``
    (one run per value when there are at most ``max_bins``)."""
    n = a.size
    if n <= max_bins:
        edges = np.arange(n + 1)
    else:  # half the edges at equal counts, half at equal steps of value (for the tails)
        by_count = np.round(np.linspace(0, n, max_bins // 2 + 1)).astype(np.int64)
        steps = np.linspace(a[0], a[-1], max_bins - max_bins // 2 + 1)
        by_value = np.searchsorted(-a, -steps, side="left")  # a is sorted descending
        edges = np.unique(np.concatenate([by_count, by_value, [0, n]]))
    s1, s2 = _prefix(a)
    return edges.astype(np.float64), s1[edges], s2[edges]


def _side_tables(a: np.ndarray, k: int, max_bins: int, zero_tail: bool = True):
    """For magnitudes ``a`` sorted descending: the least cost ``F[j]`` with ``j = 0..k`` free
    clusters over a prefix (the rest to 0), and what is needed to rebuild the clusters.
    ``zero_tail=False``: no zero centre, all values are clustered (plain 1-D k-means)."""
    w, s, q = _bins(a, max_bins)
    m = w.size - 1
    # the values after position t go to 0; without a zero centre, no value may
    tail = q[-1] - q if zero_tail else np.where(np.arange(m + 1) == m, 0.0, np.inf)
    rows = [np.where(np.arange(m + 1) == 0, 0.0, np.inf)]
    args, from_prev = [], []
    sse = _sse_matrix(w, s, q) if 0 < m <= _DENSE_ROWS else None
    for _ in range(k):
        if m == 0:
            cur, arg = np.zeros(1), np.zeros(1, dtype=np.int64)
        elif sse is not None:
            cur, arg = _dense_row(rows[-1], sse)
        else:
            cur, arg = _dc_row(rows[-1], w, s, q)
        keep_prev = rows[-1] <= cur  # an empty cluster: no better with one more centre
        rows.append(np.where(keep_prev, rows[-1], cur))
        args.append(arg)
        from_prev.append(keep_prev)
    totals = np.array([np.min(r + tail) for r in rows])
    ends = [int(np.argmin(r + tail)) for r in rows]
    return totals, ends, args, from_prev, (w, s)


def _side_centres(j: int, tables) -> list[float]:
    totals, ends, args, from_prev, (w, s) = tables
    centres, t = [], ends[j]
    while j > 0 and t > 0:
        if from_prev[j - 1][t]:
            j -= 1
            continue
        u = int(args[j - 1][t])
        centres.append((s[t] - s[u]) / (w[t] - w[u]))
        t, j = u, j - 1
    return centres


def zero_kmeans_1d_multi(values: torch.Tensor, ks: list[int], max_bins: int = 512,
                         lloyd_iters: int = 100) -> list[tuple[torch.Tensor, float]]:
    """``zero_kmeans_1d`` for several ``k`` from one dynamic programme: a list of
    (codebook with 0, sorted, length ``k + 1``; distortion)."""
    if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"every k (number of nonzero centres) must be an integer >= 1, got {ks}")
    if max_bins < 1:
        raise ValueError(f"max_bins must be >= 1, got {max_bins}")
    x = values.detach().flatten().to(torch.float64).cpu().numpy()
    if np.isnan(x).any():
        raise ValueError("values contain NaN")
    xs = np.sort(x)
    neg = -xs[xs < 0]  # magnitudes, descending
    pos = xs[xs > 0][::-1]
    kmax = max(ks)
    t_neg, t_pos = _side_tables(neg, kmax, max_bins), _side_tables(pos, kmax, max_bins)
    exact = neg.size <= max_bins and pos.size <= max_bins
    s1, s2 = _prefix(xs)
    out = []
    for k in ks:
        split = [t_neg[0][j] + t_pos[0][k - j] for j in range(k + 1)]
        j = int(np.argmin(split))
        centres = [-c for c in _side_centres(j, t_neg)] + _side_centres(k - j, t_pos)
        dist = float(split[j])
        if not centres:
            centres = [0.0]
        centres = np.array(centres + [centres[-1]] * (k - len(centres)), dtype=np.float64)
        if not exact and xs.size:
            refined, refined_dist = _lloyd_sorted(xs, s1, s2, centres, lloyd_iters)
            if refined_dist <= dist:
                centres, dist = refined, refined_dist
        out.append((torch.as_tensor(np.sort(np.append(centres, 0.0)), dtype=values.dtype),
                    max(dist, 0.0)))
    return out


def kmeans_1d_multi(values: torch.Tensor, ks: list[int], max_bins: int = 512,
                    lloyd_iters: int = 100) -> list[tuple[torch.Tensor, float]]:
    """Plain 1-D k-means (no fixed zero) for several ``k``: (sorted codebook of length
    ``k``, distortion) each, by the same dynamic programme over the sorted values."""
    if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"every k must be an integer >= 1, got {ks}")
    x = values.detach().flatten().to(torch.float64).cpu().numpy()
    if np.isnan(x).any():
        raise ValueError("values contain NaN")
    xs = np.sort(x)
    if xs.size == 0:
        return [(torch.zeros(k, dtype=values.dtype), 0.0) for k in ks]
    tables = _side_tables(xs, max(ks), max_bins, zero_tail=False)
    s1, s2 = _prefix(xs)
    out = []
    for k in ks:
        centres = _side_centres(k, tables)
        dist = float(tables[0][k])
        centres = np.array(centres + [centres[-1]] * (k - len(centres)), dtype=np.float64)
        if xs.size > max_bins:  # refine the binned solution on all values
            refined, refined_dist = _lloyd_plain(xs, s1, s2, centres, lloyd_iters)
            if refined_dist <= dist:
                centres, dist = refined, refined_dist
        out.append((torch.as_tensor(np.sort(centres), dtype=values.dtype), max(dist, 0.0)))
    return out


def _lloyd_plain(xs, s1, s2, centres, iters):
    """Lloyd iterations on sorted ``xs`` with ``centres`` only (no fixed zero)."""
    n = xs.size
    c = np.sort(centres)
    for _ in range(max(iters, 1)):
        cuts = np.concatenate([[0], np.searchsorted(xs, (c[1:] + c[:-1]) / 2, side="left"), [n]])
        a, b = cuts[:-1], cuts[1:]
        new = np.where(b > a, (s1[b] - s1[a]) / np.maximum(b - a, 1), c)
        if np.array_equal(new, c):
            break
        c = np.sort(new)
    cuts = np.concatenate([[0], np.searchsorted(xs, (c[1:] + c[:-1]) / 2, side="left"), [n]])
    a, b = cuts[:-1], cuts[1:]
    dist = (s2[b] - s2[a]) - 2 * c * (s1[b] - s1[a]) + c * c * (b - a)
    return c, float(dist.sum())


def zero_kmeans_is_exact(values: torch.Tensor, max_bins: int = 512) -> bool:
    """Whether ``zero_kmeans_1d(values, k, max_bins)`` is the exact optimum: each sign has at
    most ``max_bins`` nonzeros (else the programme runs over ``max_bins`` runs of sorted
    values and Lloyd refines it, a local optimum that is only bounded by the binned one)."""
    x = values.detach().flatten()
    return int((x < 0).sum()) <= max_bins and int((x > 0).sum()) <= max_bins


def zero_kmeans_1d(values: torch.Tensor, k: int, max_bins: int = 512,
                   lloyd_iters: int = 100) -> tuple[torch.Tensor, float]:
    """The codebook ``{0} U {k centres}`` (sorted, length ``k + 1``) minimising the
    distortion of ``values``, and that distortion. Exact when each sign has at most
    ``max_bins`` values; otherwise exact over ``max_bins`` runs, then refined by Lloyd."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k (number of nonzero centres) must be an integer >= 1, got {k!r}")
    return zero_kmeans_1d_multi(values, [k], max_bins=max_bins, lloyd_iters=lloyd_iters)[0]


def assign_to_codebook(values: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Each value replaced by its nearest codebook entry (``codebook`` sorted ascending;
    a value exactly between two entries goes to the larger)."""
    cb = codebook.to(values.dtype).to(values.device)
    if cb.numel() == 1:
        return cb.expand_as(values).clone()
    bounds = (cb[1:] + cb[:-1]) / 2
    return cb[torch.bucketize(values, bounds, right=True)]


def kmeans_quantize(weight: torch.Tensor, bits: int, zero_counts: bool = False,
                    max_bins: int = 512, fixed_zero: bool = True) -> KMeansQuantized:
    """Quantize ``weight`` with a k-means codebook fitted to its nonzeros: ``2^bits``
    nonzero centres plus the fixed 0 (``zero_counts=True``: ``2^bits`` values including 0).
    Zeros stay zero; a nonzero goes to its nearest entry, possibly 0."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
        raise ValueError(f"bits must be an integer >= 1, got {bits!r}")
    k = 2 ** bits - (1 if zero_counts else 0)
    if k < 1:
        raise ValueError("with zero_counts=True, bits must be >= 1 (1 bit: {0, c})")
    w = weight.detach()
    if not fixed_zero:  # plain k-means over every weight, zeros included: 2^b values
        codebook, _ = kmeans_1d_multi(w, [2 ** bits], max_bins=max_bins)[0]
        return quantize_with_codebook(w, codebook, bits, keep_zeros=False)
    codebook, _ = zero_kmeans_1d(w[w != 0], k, max_bins=max_bins)
    return quantize_with_codebook(w, codebook, bits)


def quantize_with_codebook(weight: torch.Tensor, codebook: torch.Tensor, bits: int,
                           keep_zeros: bool = True) -> KMeansQuantized:
    """Each weight goes to its nearest codebook entry; with ``keep_zeros`` zeros stay
    zero whatever the codebook."""
    w = weight.detach()
    nz = w != 0 if keep_zeros else torch.ones_like(w, dtype=torch.bool)
    q = torch.zeros_like(w)
    q[nz] = assign_to_codebook(w[nz], codebook)
    distortion = float(((w - q).double() ** 2).sum())
    return KMeansQuantized(weight=q, codebook=codebook.to(w.dtype), distortion=distortion,
                           bits=bits)


def kmeans_quantize_all_bits(weight: torch.Tensor, candidate_bits: list[int],
                             max_bins: int = 512, fixed_zero: bool = True
                             ) -> list[KMeansQuantized]:
    """``kmeans_quantize`` at every candidate bit-width from one dynamic programme."""
    if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in candidate_bits):
        raise ValueError(f"bits must be integers >= 1, got {candidate_bits!r}")
    w = weight.detach()
    ks = [2 ** b for b in candidate_bits]
    if not fixed_zero:
        fits = kmeans_1d_multi(w, ks, max_bins=max_bins)
        return [quantize_with_codebook(w, cb, b, keep_zeros=False)
                for (cb, _), b in zip(fits, candidate_bits, strict=True)]
    fits = zero_kmeans_1d_multi(w[w != 0], ks, max_bins=max_bins)
    return [quantize_with_codebook(w, cb, b) for (cb, _), b in zip(fits, candidate_bits,
                                                                    strict=True)]


def zero_kmeans_1d_exact(values: torch.Tensor, k: int) -> tuple[torch.Tensor, float]:
    """The optimal codebook ``{0} U {k centres}`` and its distortion, by dynamic programming.

    In 1-D an optimal quantizer's cells are contiguous runs of the sorted values; each run
    either shares a free centre (cost: its sum of squared deviations from its mean) or goes
    to 0 (cost: its sum of squares), and at most one run goes to 0. ``best[z][m][i]`` is the
    least cost of the first ``i`` values in ``m`` free runs and ``z`` zero runs.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    xs = np.sort(values.detach().flatten().to(torch.float64).cpu().numpy())
    n = xs.size
    if n == 0:
        return torch.zeros(k + 1, dtype=values.dtype), 0.0
    s1, s2 = _prefix(xs)
    i_idx, j_idx = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")  # run [j, i)
    cnt = i_idx - j_idx
    valid = cnt > 0
    safe = np.maximum(cnt, 1)
    sse = np.where(valid, (s2[i_idx] - s2[j_idx]) - (s1[i_idx] - s1[j_idx]) ** 2 / safe, np.inf)
    sse = np.maximum(sse, 0.0)
    zero = np.where(valid, s2[i_idx] - s2[j_idx], np.inf)
    inf = np.inf
    best = np.full((2, k + 1, n + 1), inf)
    back = np.zeros((2, k + 1, n + 1, 2), dtype=np.int64)  # (previous i, kind: 0 free 1 zero)
    best[0, 0, 0] = 0.0
    for m in range(k + 1):
        for z in range(2):
            if m == 0 and z == 0:
                continue
            cands = []
            if m > 0:  # last run is a free one
                cands.append((best[z, m - 1][None, :] + sse, 0))
            if z == 1:  # last run is the zero run
                cands.append((best[0, m][None, :] + zero, 1))
            for table, kind in cands:
                j_best = np.argmin(table, axis=1)
                val = table[np.arange(n + 1), j_best]
                better = val < best[z, m]
                best[z, m][better] = val[better]
                back[z, m][better] = np.stack([j_best[better], np.full(better.sum(), kind)], 1)
    z_opt, m_opt = np.unravel_index(np.argmin(best[:, :, n]), best[:, :, n].shape)
    distortion = float(best[z_opt, m_opt, n])
    centres, z, m, i = [], int(z_opt), int(m_opt), n
    while i > 0:
        j, kind = back[z, m, i]
        if kind == 0:
            centres.append((s1[i] - s1[j]) / (i - j))
            m -= 1
        else:
            z = 0
        i = int(j)
    centres += [centres[-1] if centres else 0.0] * (k - len(centres))
    return torch.as_tensor(np.sort(np.append(centres, 0.0)), dtype=values.dtype), distortion
