r"""Dictionary learning for thresholded features (DLTF), Xu, Wang, Yang, Liu & Liu (2019).

*Learning Simple Thresholded Features with Sparse Support Recovery*, arXiv 1804.05515,
IEEE TCSVT 2019. Only the abstract was available to us; everything below the abstract's
claims is **our reading** and is marked so.

**The thresholded feature.** With a dictionary ``D`` (``n x m``, unit-norm atoms as
columns) the sparse code of a signal ``x`` is approximated in one step by

    z = S_lambda(D' x),   S_lambda(c) = sign(c) * max(|c| - lambda, 0),

instead of solving a lasso. (The paper's claim.)

**Recovery guarantee (our reading).** Let ``G = D'D - I`` and write ``|u|_(k,2)`` for the
l2 norm of the ``k`` largest-magnitude entries of ``u`` (the (k,2)-norm). For a signal
``x = D z`` with ``z`` supported on ``S``, ``|S| <= k``,

    |(D'x)_j - z_j| = |sum_{i in S} G_ji z_i| <= |G_j|_(k,2) |z|_2 <= mu_k |z|_2,
    mu_k = max_j |G_j|_(k,2)          (the (k,2)-coherence of D),

so the thresholded feature has exactly the support ``S`` (and the signs of ``z``) whenever

    mu_k |z|_2 <= lambda < min_{i in S} |z_i| - mu_k |z|_2.              (R)

The classical mutual-coherence version replaces ``mu_k |z|_2`` by ``mu_1 |z|_1``.

**DLTF (our reading).** Learn ``D`` for the thresholded feature by

    min_D  1/(2N) |X - g D S_lambda(D'X)|_F^2 + gamma * sum_j |(D'D - I)_j|_(k,2),
           subject to |d_j|_2 = 1,

where ``g`` is the least-squares scalar gain of the reconstruction. The penalty is the sum
of the quantities whose maximum is ``mu_k`` in (R). We minimise it by projected
(proximal) gradient steps: the (k,2) term enters through its Moreau envelope
``env_mu(u) = min_p |p|_(k,2) + |p - u|^2 / (2 mu)``, whose gradient ``(u - prox(u)) / mu``
needs the exact proximal operator below on every row of ``G`` at every step (the same
as splitting ``M = D'D - I`` with a quadratic coupling and minimising ``M`` exactly);
the unit-norm constraint is handled by its prox, the projection ``d_j <- d_j / |d_j|``.

**The proximal operator of the (k,2)-norm** (the paper's claim: O(m log m); the
derivation is ours). ``prox(v) = argmin_x 1/2 |x - v|^2 + lambda |x|_(k,2)``. Let ``y`` be
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

import contextlib
import math
import time
from typing import Any

import numpy as np
import torch

from lib.core import limit_steps, make_generator, progress
from lib.sparse.projections import soft_threshold  # the library's one soft threshold

from .task import single_threaded

# --------------------------------------------------------------------------------------
# Validation helpers
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
# 1. The thresholded feature
# --------------------------------------------------------------------------------------

def thresholded_feature(D: torch.Tensor, X: torch.Tensor, lam: float) -> torch.Tensor:
    """``z = S_lambda(D' x)`` for every row ``x`` of ``X`` (``X``: N x n, ``D``: n x m)."""
    if D.dim() != 2 or X.shape[-1] != D.shape[0]:
        raise ValueError(f"X has {X.shape[-1]} features but D has {D.shape[0]} rows")
    return soft_threshold(X @ D, _check_lam(lam))


# --------------------------------------------------------------------------------------
# 2. The (k,2)-norm and its dual, the k-support norm
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
# 3. The exact proximal operator, one vector (numpy)
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
# 4. The same prox, batched over rows (torch, any device)
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


# --------------------------------------------------------------------------------------
# 6. Coherence and the recovery condition
# --------------------------------------------------------------------------------------

def normalize_atoms(D: torch.Tensor) -> torch.Tensor:
    """Columns scaled to unit l2 norm (the projection onto the constraint set)."""
    return D / D.norm(dim=0, keepdim=True).clamp(min=torch.finfo(D.dtype).tiny)


def k2_coherence(D: torch.Tensor, k: int) -> float:
    """``mu_k = max_j |(D'D - I)_j|_(k,2)`` of the unit-normalised atoms of ``D``."""
    D = normalize_atoms(torch.as_tensor(D, dtype=torch.float64))
    G = D.T @ D - torch.eye(D.shape[1], dtype=D.dtype, device=D.device)
    return float(k2_norm(G, k).max())


def recovery_interval(mu: float, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The thresholds of (R): ``S_lambda(D'Dz)`` has the support of ``z`` for every
    ``lambda`` in ``[lo, hi)``, where ``lo = mu |z|_2``, ``hi = min_{i in S}|z_i| - mu |z|_2``
    and ``mu`` is the (k,2)-coherence with ``k >= |S|``. Rows of ``z`` are codes."""
    norm = z.norm(dim=-1)
    smallest = torch.where(z != 0, z.abs(), torch.full_like(z, math.inf)).min(-1).values
    return mu * norm, smallest - mu * norm


def thresholding_recovers_support(D: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Whether some ``lambda`` makes ``supp S_lambda(D' D z) = supp z`` (per row of ``z``):
    the smallest ``|D'x|`` on the support exceeds the largest one off it."""
    corr = (z @ D.T @ D).abs()
    on = z != 0
    low_on = torch.where(on, corr, torch.full_like(corr, math.inf)).min(-1).values
    high_off = torch.where(on, torch.full_like(corr, -math.inf), corr).max(-1).values
    return low_on > high_off.clamp(min=0)



# --------------------------------------------------------------------------------------
# 7. Learning the dictionary: DLTF
# --------------------------------------------------------------------------------------

def reconstruction_gain(X: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """The least-squares scalar ``g = <X, R> / |R|^2`` (0 when ``R = 0``)."""
    rr = (R * R).sum()
    return torch.where(rr > 0, (X * R).sum() / rr.clamp(min=torch.finfo(R.dtype).tiny),
                       torch.zeros_like(rr))


def dltf_loss(D: torch.Tensor, X: torch.Tensor, lam: float, gamma: float, k: int,
              mu: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The DLTF objective on a batch (our reading), with the (k,2) term smoothed:

    ``1/(2B) |X - g D S_lambda(D'X)|^2 + gamma * sum_j env_mu(G_j)``, ``G = D'D - I``.
    ``env_mu(u) = |p|_(k,2) + |u - p|^2/(2 mu)`` with ``p = prox_{mu |.|_(k,2)}(u)``; by
    Danskin's theorem its gradient is ``(u - p)/mu``, so ``p`` is held fixed (detached).
    """
    Z = soft_threshold(X @ D, lam)                            # thresholded features
    R = Z @ D.T
    g = reconstruction_gain(X, R)
    rec = ((X - g * R) ** 2).sum() / (2 * len(X))
    stats = {"reconstruction": rec.item()}
    loss = rec
    if gamma > 0:
        G = D.T @ D - torch.eye(D.shape[1], dtype=D.dtype, device=D.device)
        with torch.no_grad():
            p = prox_k2(G, k, mu)                            # exact prox, every row of G
        env = k2_norm(p, k).sum() + ((G - p) ** 2).sum() / (2 * mu)
        loss = loss + gamma * env
        stats["penalty"] = env.item()
    return loss, stats


def learn_dltf(X: torch.Tensor, n_atoms: int, *, lam: float, gamma: float, k: int, mu: float,
               steps: int, batch: int, lr: float, seed: int, device: str | torch.device = "cpu",
               log_every: int = 50, show_progress: bool | None = None) -> dict[str, Any]:
    """DLTF by projected gradient: a step on ``dltf_loss`` (Adam moments), then every atom
    is projected back to the unit sphere. Starts from random training signals."""
    if n_atoms < 1 or steps < 1 or batch < 1 or lr <= 0 or mu <= 0 or gamma < 0:
        raise ValueError("need n_atoms, steps, batch >= 1 and lr, mu > 0, gamma >= 0")
    k = _check_k(k, n_atoms)
    g = make_generator(seed)
    X = X.to(torch.float64)
    init = X[torch.randperm(len(X), generator=g)[:n_atoms]].T.clone()
    if init.shape[1] < n_atoms:
        raise ValueError(f"need at least n_atoms = {n_atoms} training signals, got {len(X)}")
    init += 0.01 * torch.randn(init.shape, generator=g, dtype=init.dtype)
    D = normalize_atoms(init).to(device).requires_grad_(True)
    Xd = X.to(device)
    opt = torch.optim.Adam([D], lr=lr)
    history = []
    start = time.perf_counter()
    threads = single_threaded() if D.device.type == "cpu" else contextlib.nullcontext()
    with threads:
        steps = limit_steps(steps)                          # a dry run's step limit
        for step in progress(range(steps), desc=f"DLTF gamma={gamma:g}", enabled=show_progress):
            idx = torch.randint(0, len(X), (batch,), generator=g).to(device)
            loss, stats = dltf_loss(D, Xd[idx], lam, gamma, k, mu)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                D.copy_(normalize_atoms(D))                 # prox of the unit-norm constraint
            if step % log_every == 0 or step == steps - 1:
                history.append({"step": step, **stats, "mu_k": k2_coherence(D.detach(), k)})
    return {"D": D.detach().cpu(), "history": history, "seconds": time.perf_counter() - start}

