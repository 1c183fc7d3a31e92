r"""The (k,2)-norm, its dual (the k-support norm) and the exact proximal operator of the
(k,2)-norm, one vector (numpy) or batched over rows (torch, any device).

``|u|_(k,2)`` is the l2 norm of the ``k`` largest-magnitude entries of ``u``: ``k = 1`` gives
the max norm, ``k = m`` the l2 norm. DLTF (``lib/papers/dltf``) penalises the (k,2)-norms of
the rows of a dictionary's Gram matrix; any problem with a (k,2) or k-support penalty can
use these. Hand-written: no well-kept library has this prox (a generic convex solver,
``lib.papers.dltf.prox_k2_generic``, is the tests' and the benchmark's oracle).

**The proximal operator of the (k,2)-norm** (Xu et al. 2019 claim O(m log m);
the derivation is ours). ``prox(v) = argmin_x 1/2 |x - v|^2 + lambda |x|_(k,2)``. Let ``y`` be
``|v|`` sorted in decreasing order, ``N = |x|_(k,2)`` and ``t`` the k-th largest ``|x_i|``.
The subdifferential of the norm at ``x != 0`` is ``{w * x / N : w in [0,1]^m, sum w = k,
w_i = 1 where |x_i| > t, w_i = 0 where |x_i| < t}``; solving ``v - x in lambda * d|x|``
gives, with ``c = N / (N + lambda)`` and ``rho = lambda / N``,

    x_i = sign(v_i) * max(c * y_i, min(y_i, t))                                  (P1)

i.e. the entries above ``t / c`` are shrunk by the common factor ``c`` (set ``A``, size
``a``), those in ``[t, t / c]`` are tied at the common value ``t`` (set ``T``, the group
at the k-th position, positions ``a .. j-1``), and the rest are untouched. With ``r = k - a``,
``b = j - a``, ``s = sum_T y_i`` and ``Q_a = sum_A y_i^2``:

    sum_T w_i = r,  w_i = (y_i - t) / (t rho)   =>   t = s / (b + r rho),          (P2)
    N^2 = c^2 Q_a + r t^2   =>   Q_a / (N + lambda)^2 + r s^2 / (b N + r lambda)^2 = 1.  (P3)

(P3) is convex and decreasing in ``N``: Newton from a point left of the root converges
monotonically. The structure ``(a, j)`` is found by two binary searches over prefix sums
(no enumeration of groups): for a trial tie level ``t`` the matching ``lambda(t)`` follows
in O(log k) from (P2)-(P3), and ``lambda(t)`` decreases in ``t``. ``x = 0`` exactly when
``lambda >= |v|_ksp``, the k-support norm of ``v`` (the dual norm of the (k,2)-norm).
Cost: one sort plus O(m) work and O(log m log k) searches.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

# --------------------------------------------------------------------------------------
# Validation helpers (also used by lib/papers/dltf)
# --------------------------------------------------------------------------------------

def _check_k(k: Any, m: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= m:
        raise ValueError(f"k must be an int with 1 <= k <= m = {m}, got {k!r}")
    return int(k)



def _check_lam(lam: float) -> float:
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lambda must be a finite number >= 0, got {lam!r}")
    return lam



# --------------------------------------------------------------------------------------
# 1. The (k,2)-norm and its dual, the k-support norm
# --------------------------------------------------------------------------------------

def k2_norm(v: torch.Tensor | np.ndarray, k: int) -> torch.Tensor:
    """``|v|_(k,2)``: the l2 norm of the ``k`` largest-magnitude entries (last dim)."""
    v = torch.as_tensor(v)
    k = _check_k(k, v.shape[-1])
    return torch.sqrt((v.abs().topk(k, dim=-1).values ** 2).sum(-1))


def k_support_norm(v: torch.Tensor | np.ndarray, k: int) -> torch.Tensor:
    """The k-support norm (Argyriou et al. 2012), the dual norm of the (k,2)-norm (last dim).

    With ``y`` = ``|v|`` sorted decreasingly and ``a`` the smallest index in ``[0, k-1]``
    with ``(k - a) y_a <= sum_{i >= a} y_i``: ``sqrt(sum_{i<a} y_i^2 + (sum_{i>=a} y_i)^2/(k-a))``.
    """
    v = torch.as_tensor(v)
    flat = v.reshape(-1, v.shape[-1])
    k = _check_k(k, flat.shape[1])
    y = flat.abs().sort(dim=1, descending=True).values
    zero = torch.zeros(len(y), 1, dtype=y.dtype, device=y.device)
    P = torch.cat([zero, y.cumsum(1)], 1)
    Q = torch.cat([zero, (y * y).cumsum(1)], 1)
    idx = torch.arange(k, device=y.device)
    ok = (P[:, -1:] - P[:, :k]) - (k - idx) * y[:, :k] >= 0
    ok[:, k - 1] = True                 # true in exact arithmetic; guard against rounding
    a = ok.to(torch.int64).argmax(1)    # the first true
    Pa, Qa = P.gather(1, a[:, None])[:, 0], Q.gather(1, a[:, None])[:, 0]
    out = torch.sqrt(Qa + (P[:, -1] - Pa) ** 2 / (k - a))
    return out.reshape(v.shape[:-1])


def prox_objective(x: np.ndarray, v: np.ndarray, k: int, lam: float) -> float:
    """``1/2 |x - v|^2 + lambda |x|_(k,2)``, the function the prox minimises."""
    x, v = np.asarray(x, dtype=np.float64), np.asarray(v, dtype=np.float64)
    top = np.sort(np.abs(x))[::-1][:k]
    return 0.5 * float((x - v) @ (x - v)) + lam * math.sqrt(float(top @ top))


# --------------------------------------------------------------------------------------
# 2. The exact proximal operator, one vector (numpy)
# --------------------------------------------------------------------------------------

def _first_true(lo: int, hi: int, pred) -> int:
    """Smallest ``i`` in ``[lo, hi]`` with ``pred(i)``; ``pred`` is monotone and ``pred(hi)``."""
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _newton_norm(qa: float, r: float, b: float, s: float, lam: float) -> float:
    """Solve (P3) ``qa/(N+lam)^2 + r s^2/(bN + r lam)^2 = 1`` for ``N > 0``.

    Start where the left side is >= 1 (using ``b N + r lam <= b (N + lam)``); Newton on a
    convex decreasing function from the left then increases monotonically to the root.
    """
    n = max(0.0, math.sqrt(qa + r * s * s / (b * b)) - lam)
    for _ in range(200):
        u1, u2 = n + lam, b * n + r * lam
        f = qa / u1**2 + r * s * s / u2**2 - 1.0
        df = -2.0 * qa / u1**3 - 2.0 * r * s * s * b / u2**3
        new = n - f / df
        if not new > n:     # converged to machine precision (or f <= 0 by rounding)
            break
        n = new
    return n


def prox_k2_single(v: np.ndarray, k: int, lam: float) -> np.ndarray:
    """Exact ``prox_{lambda |.|_(k,2)}(v)`` of one vector in O(m log m) (see module docstring)."""
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"v must be a non-empty finite 1-d array, got shape {v.shape}")
    m = v.size
    k, lam = _check_k(k, m), _check_lam(lam)
    if lam == 0:
        return v.copy()
    order = np.argsort(-np.abs(v), kind="stable")
    y = np.abs(v)[order]                                    # |v| sorted decreasingly
    P = np.concatenate([[0.0], np.cumsum(y)])               # P[i] = y_0 + ... + y_{i-1}
    Q = np.concatenate([[0.0], np.cumsum(y * y)])
    nnz = int(np.count_nonzero(y))
    if nnz <= k:        # the (k,2)-norm is the l2 norm around v: block soft-thresholding
        norm = math.sqrt(Q[-1])
        return np.zeros_like(v) if norm <= lam else v * (1.0 - lam / norm)

    # x = 0 iff lambda >= |v|_ksp (the dual norm): closed form of Argyriou et al.
    a0 = _first_true(0, k - 1, lambda i: P[nnz] - P[i] - (k - i) * y[i] >= 0)
    if lam >= math.sqrt(Q[a0] + (P[nnz] - P[a0]) ** 2 / (k - a0)):
        return np.zeros_like(v)
    neg_y = -y[:nnz]                                        # ascending, for searchsorted

    def lam_at(t: float) -> float:
        """The lambda whose prox has tie level ``t`` (decreasing in t), from (P2)-(P3)."""
        p = int(np.searchsorted(neg_y, -t, side="left"))    # p = #{y_i > t}
        if p < k:
            return 0.0
        # a = |A|: the smallest i with sum_{l<p} min(1, (y_l/t - 1)/rho_i) >= k at
        # rho_i = y_i/t - 1 (the sum decreases in rho), written without divisions.
        a = _first_true(0, k - 1,
                        lambda i: P[p] - P[i] - (p - i) * t - (k - i) * (y[i] - t) >= 0)
        r = k - a
        rho = (P[p] - P[a] - (p - a) * t) / (r * t)          # (P2) solved for rho
        c = 1.0 / (1.0 + rho)
        return rho * math.sqrt(c * c * Q[a] + r * t * t)     # lambda = rho N, N from (P3)

    # Stage 1: j = #{y_i >= t*}. lambda(y_i) increases with i: the largest i with
    # lambda(y_i) <= lambda puts t* in (y_{i+1}, y_i].
    lo, hi = k - 1, nnz
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if lam_at(y[mid]) <= lam:
            lo = mid
        else:
            hi = mid
    j = lo + 1
    y_below = y[j] if j < nnz else 0.0

    # Stage 2: a = |A|. For this j the entry a leaves A when t drops to tau_a (where
    # t/c = y_a); tau_a increases with a, so a = #{a : tau_a < t*}, found by bisection.
    if j == k:          # the top k entries: T is the tie group of y_{k-1}
        a = int(np.searchsorted(neg_y, -y[k - 1], side="left"))
    else:
        def below_t_star(i: int) -> bool:
            tau = (P[j] - P[i] - (k - i) * y[i]) / (j - k)
            if tau <= y_below:
                return True
            if tau > y[j - 1]:
                return False
            return lam_at(tau) > lam

        a = _first_true(0, k - 1, lambda i: not below_t_star(i))

    # Solve (P3) for N in the found structure, then assemble (P1).
    r, b, s, qa = k - a, j - a, P[j] - P[a], Q[a]
    n = _newton_norm(qa, r, b, s, lam)
    c = n / (n + lam)                                       # the shrink factor of A
    t = s * n / (b * n + r * lam)                           # (P2): the common tie value
    x_sorted = np.maximum(c * y, np.minimum(y, t))
    x = np.empty_like(v)
    x[order] = x_sorted
    return np.sign(v) * x


# --------------------------------------------------------------------------------------
# 3. The same prox, batched over rows (torch, any device)
# --------------------------------------------------------------------------------------

def _bits(n: int) -> int:
    return max(1, int(n).bit_length())


def prox_k2(V: torch.Tensor, k: int, lam: float | torch.Tensor) -> torch.Tensor:
    """Exact ``prox_{lambda |.|_(k,2)}`` of every row of ``V`` (``B x m`` or ``m``), vectorised.

    The algorithm of ``prox_k2_single``; every binary search runs a fixed number of
    bisection steps on all rows at once. ``lam`` is a scalar or one value per row.
    """
    V = torch.as_tensor(V)
    single = V.dim() == 1
    if single:
        V = V[None]
    if V.dim() != 2 or V.shape[1] == 0:
        raise ValueError(f"V must be a vector or a 2-d batch of vectors, got {tuple(V.shape)}")
    if not torch.is_floating_point(V):
        V = V.to(torch.get_default_dtype())
    if not torch.isfinite(V).all():
        raise ValueError("V must be finite")
    rows, m = V.shape
    k = _check_k(k, m)
    dt, dev = V.dtype, V.device
    lam_t = torch.as_tensor(lam, dtype=dt, device=dev)
    if lam_t.dim() == 0:
        _check_lam(lam_t.item())
    if not (torch.isfinite(lam_t).all() and (lam_t >= 0).all()):
        raise ValueError("lambda must be finite and >= 0")
    lam_t = lam_t.expand(rows).contiguous()

    y, order = torch.sort(V.abs(), dim=1, descending=True, stable=True)
    zero = torch.zeros(rows, 1, dtype=dt, device=dev)
    P = torch.cat([zero, y.cumsum(1)], 1)
    Q = torch.cat([zero, (y * y).cumsum(1)], 1)
    nnz = (y > 0).sum(1)
    neg_y = -y
    y_pad = torch.cat([y, zero], 1)                         # y_m := 0

    def at(T: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return T.gather(1, idx.clamp(0, T.shape[1] - 1)[:, None])[:, 0]

    kvec = torch.full((rows,), k, dtype=torch.long, device=dev)
    zvec = torch.zeros_like(kvec)
    ksteps = _bits(k) + 1

    def first_true(pred, lo, hi):
        for _ in range(ksteps):
            mid = (lo + hi) // 2
            ok = pred(mid)
            live = lo < hi
            hi = torch.where(live & ok, mid, hi)
            lo = torch.where(live & ~ok, mid + 1, lo)
        return lo

    kidx = torch.arange(k, device=dev)
    y_k, P_k = y[:, :k], P[:, :k]

    def first_true_dense(ok: torch.Tensor) -> torch.Tensor:
        ok[:, -1] = True                # true in exact arithmetic at i = k-1; guard rounding
        return ok.to(torch.int64).argmax(1)

    def lam_at(t: torch.Tensor) -> torch.Tensor:
        """lambda(t) as in prox_k2_single; the search for a is dense over [0, k): O(k)."""
        p = torch.minimum(torch.searchsorted(neg_y, (-t)[:, None], side="left")[:, 0], nnz)
        Pp, tc = at(P, p)[:, None], t[:, None]
        a = first_true_dense(Pp - P_k - (p[:, None] - kidx) * tc - (k - kidx) * (y_k - tc) >= 0)
        r = (k - a).to(dt)
        rho = (Pp[:, 0] - at(P, a) - (p - a) * t) / (r * t)
        c = 1 / (1 + rho)
        out = rho * torch.sqrt(c * c * at(Q, a) + r * t * t)
        return torch.where(p < k, torch.zeros_like(out), out)

    # the zero test: lambda >= k-support norm
    Pn = at(P, nnz)
    a0 = first_true_dense(Pn[:, None] - P_k - (k - kidx) * y_k >= 0)
    lam_max = torch.sqrt(at(Q, a0) + (Pn - at(P, a0)) ** 2 / (k - a0).to(dt))

    # Stage 1 (bisection on j)
    lo, hi = torch.full_like(kvec, k - 1), nnz.clone()
    for _ in range(_bits(m) + 1):
        live = hi - lo > 1
        mid = (lo + hi) // 2
        ok = lam_at(at(y, mid)) <= lam_t
        lo = torch.where(live & ok, mid, lo)
        hi = torch.where(live & ~ok, mid, hi)
    j = lo + 1
    y_below, y_last = at(y_pad, j), at(y, j - 1)

    # Stage 2 (bisection on a)
    denom = (j - k).clamp(min=1).to(dt)

    def not_below_t_star(i: torch.Tensor) -> torch.Tensor:
        tau = (at(P, j) - at(P, i) - (k - i) * at(y, i)) / denom
        inside = (tau > y_below) & (tau <= y_last)
        lam_tau = lam_at(torch.where(inside, tau, y_last))
        return ~((tau <= y_below) | (inside & (lam_tau > lam_t)))

    a = first_true(not_below_t_star, zvec, kvec - 1)
    a_top = torch.searchsorted(neg_y, (-at(y, kvec - 1))[:, None], side="left")[:, 0]
    a = torch.where(j == k, a_top, a)

    # (P3) by Newton, all rows at once, then (P1)
    special = (nnz <= k) | (lam_t == 0) | (lam_t >= lam_max)
    lam_s = torch.where(special, torch.ones_like(lam_t), lam_t)
    r, b = (k - a).to(dt), (j - a).clamp(min=1).to(dt)
    s, qa = at(P, j) - at(P, a), at(Q, a)
    s = torch.where(special, torch.ones_like(s), s)
    n = (torch.sqrt(qa + r * s * s / (b * b)) - lam_s).clamp(min=0)
    for _ in range(200):
        u1, u2 = n + lam_s, b * n + r * lam_s
        f = qa / u1**2 + r * s * s / u2**2 - 1
        df = -2 * qa / u1**3 - 2 * r * s * s * b / u2**3
        new = n - f / df
        grow = torch.isfinite(new) & (new > n)
        if not grow.any():
            break
        n = torch.where(grow, new, n)
    c = n / (n + lam_s)
    t = s * n / (b * n + r * lam_s)
    xs = torch.maximum(c[:, None] * y, torch.minimum(y, t[:, None]))

    norm = torch.sqrt(Q[:, -1])
    l2 = (1 - lam_t / norm.clamp(min=torch.finfo(dt).tiny)).clamp(min=0)[:, None] * y
    xs = torch.where((nnz <= k)[:, None], l2, xs)
    xs = torch.where(((lam_t >= lam_max) & (nnz > k))[:, None], torch.zeros_like(xs), xs)
    xs = torch.where((lam_t == 0)[:, None], y, xs)
    x = torch.empty_like(xs).scatter_(1, order, xs) * torch.sign(V)
    return x[0] if single else x
