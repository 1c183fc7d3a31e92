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

**The proximal operator of the (k,2)-norm** (the paper's claim: O(m log m)) lives a layer
down, with the (k,2)-norm and its dual, in ``lib.sparse.k2_norm`` (the derivation is ours and
is stated there); this module imports them.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import torch

from lib.core import limit_steps, make_generator, progress
from lib.sparse.k2_norm import _check_k, _check_lam, k2_norm, prox_k2
from lib.sparse.projections import soft_threshold  # the library's one soft threshold

from .task import single_threaded

# --------------------------------------------------------------------------------------
# 1. The thresholded feature
# --------------------------------------------------------------------------------------

def thresholded_feature(D: torch.Tensor, X: torch.Tensor, lam: float) -> torch.Tensor:
    """``z = S_lambda(D' x)`` for every row ``x`` of ``X`` (``X``: N x n, ``D``: n x m)."""
    if D.dim() != 2 or X.shape[-1] != D.shape[0]:
        raise ValueError(f"X has {X.shape[-1]} features but D has {D.shape[0]} rows")
    return soft_threshold(X @ D, _check_lam(lam))


# --------------------------------------------------------------------------------------
# 2. Coherence and the recovery condition
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
# 3. Learning the dictionary: DLTF
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

