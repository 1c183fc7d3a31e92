"""Exact variances of the standard and the marginal estimator on the one-step bandits.

**Directions.** ``a ~ N(mu, sigma^2 I)`` in R^d with ``|mu| = 1`` (so ``sigma`` is
``sigma / |mu|``), reward ``q(x) = <x, g>`` of the direction ``x = a / |a|`` for a unit goal
``g`` at angle ``beta`` from ``mu``, minus a baseline ``b`` (``0``, or the exact
``E[q]``). Both estimators have the same mean ``G = grad_mu E[q]``; their total variances
``tr Cov = E|g|^2 - |G|^2`` reduce to one-dimensional integrals over the angle ``theta``
between ``x`` and ``mu``: write ``a = sigma u x``; given ``x``, ``u`` has density
``~ u^{d-1} phi(u - alpha)`` with ``alpha = cos(theta) / sigma``, so
``E[u^j | x] = M_{d-1+j}(alpha) / M_{d-1}(alpha)`` and::

    E[|a - mu|^2 | x] = sigma^2 (E[u^2 | x] - 2 alpha E[u | x]) + 1        (standard)
    |grad_mu log f(x)|^2 = (c^2 - 2 c alpha) / sigma^2 + 1 / sigma^4         (marginal)

with ``c = alpha + (d-1) M_{d-2}/M_{d-1}``. The rest of ``x`` (a point ``w`` of S^{d-2})
enters only through ``E_w[w_1] = 0`` and ``E_w[w_1^2] = 1 / (d-1)``.

**The concentrated limit** (``sigma -> 0``). Write ``a = mu + sigma eps``; to first order
``x = mu + sigma eps_perp`` and the radial coordinate ``eps_1`` is what ``T`` discards, so
``g_marginal = E[g_standard | x]`` drops the ``eps_1`` part of ``g_standard = q eps / sigma``:

* reward *not centred* and ``<g, mu> != 0``: ``q ~ <g, mu>`` is constant to leading order,
  ``g_standard ~ <g, mu> eps / sigma`` has ``d`` equally noisy coordinates and the marginal
  estimator keeps ``d - 1``: ratio ``(d - 1) / d``;
* reward *centred* (``b = E[q]``, or a goal orthogonal to ``mu``): ``q - b ~ sigma
  <g_perp, eps_perp>``, so ``g_standard ~ <g_perp, eps> eps`` (take ``g_perp`` along
  ``e_2``: variances ``1`` for the radial coordinate, ``E eps_2^4 - 1 = 2`` along ``e_2``,
  ``1`` for each of the other ``d - 2``): total ``d + 1``, of which the marginal estimator
  keeps ``d``: ratio ``d / (d + 1)``;
* reward centred and the goal *along* ``mu`` (what a policy that already points at the goal
  sees): ``q - b ~ -sigma^2 (|eps_perp|^2 - (d - 1)) / 2`` is quadratic; with
  ``h = |eps_perp|^2 - (d - 1)`` the radial coordinate carries ``E h^2 = 2 (d - 1)`` and each
  of the ``d - 1`` tangential ones ``E[h^2 eps_j^2] = 2d + 6``: ratio ``(d + 3) / (d + 4)``
  (5/6 at d = 2).

So the figure ``(d - 1) / d`` belongs to a reward whose mean dominates its variation (no
baseline); with the exact baseline the same bandit gives ``d / (d + 1)``.

**Clipping.** ``a ~ N(m, sigma^2)``, ``y = clip(a, low, high)``, ``q(y) = -(y - target)^2``
minus a baseline: one-dimensional integrals with SciPy's adaptive quadrature and the atoms'
probabilities and scores in closed form (``scipy.stats.norm``, independent of ``lib.rl``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from lib.rl.angular import LOG_2PI, log_m

BASELINES = ("none", "exact")


def concentrated_ratio(d: int, goal_angle: float, centred: bool) -> float:
    """The ``sigma -> 0`` variance ratio (module docstring) for a goal at ``goal_angle``
    degrees from the mean: ``(d - 1) / d`` when the reward is not centred and its mean
    ``cos(goal_angle)`` does not vanish; with the exact baseline (or an orthogonal goal)
    ``d / (d + 1)``, or ``(d + 3) / (d + 4)`` for a goal along the mean, where the centred
    reward is quadratic in ``eps_perp``."""
    _check_dim(d)
    if not centred and not math.isclose(goal_angle, 90.0):
        return (d - 1) / d
    if math.isclose(goal_angle, 0.0) and centred:
        return (d + 3) / (d + 4)
    return d / (d + 1)


def _check_dim(d: int) -> None:
    if not (isinstance(d, int) and not isinstance(d, bool) and d >= 2):
        raise ValueError(f"d must be an int >= 2, got {d!r}")


def _check_baseline(baseline: str) -> None:
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; valid ones are {', '.join(BASELINES)}")


@lru_cache(maxsize=4)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _theta_nodes(sigma: float, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on [0, pi], dense where the mass is."""
    cut = min(math.pi, 15 * sigma)
    parts = [(0.0, cut)] + ([(cut, math.pi)] if cut < math.pi else [])
    x, w = _legendre(n)
    nodes = np.concatenate([0.5 * (b - a) * x + 0.5 * (a + b) for a, b in parts])
    weights = np.concatenate([0.5 * (b - a) * w for a, b in parts])
    return nodes, weights


def directional_moments(d: int, sigma: float, goal_angle: float,
                        baseline: str = "none") -> dict[str, Any]:
    """Exact mean reward, gradient ``G`` and both total variances (module docstring)."""
    _check_dim(d)
    _check_baseline(baseline)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    theta, wq = _theta_nodes(sigma)
    cos, sin = np.cos(theta), np.sin(theta)
    alpha = torch.tensor(cos / sigma, dtype=torch.float64)
    log_md = {j: log_m(alpha, j).numpy() for j in (d - 2, d - 1, d, d + 1) if j >= 0}
    ratio = lambda j: np.exp(log_md[j] - log_md[d - 1])  # noqa: E731  M_j / M_{d-1}
    a = alpha.numpy()
    log_f = -0.5 * (d - 1) * LOG_2PI + 0.5 * (a**2 - 1 / sigma**2) + log_md[d - 1]
    log_area = math.log(2) + 0.5 * (d - 1) * math.log(math.pi) - math.lgamma(0.5 * (d - 1))
    weight = wq * np.exp(log_f + log_area) * sin ** (d - 2)  # |S^{d-2}| f(theta) sin^{d-2}
    g1, g2 = math.cos(goal_angle), math.sin(goal_angle)
    mean_q = float(np.sum(weight * g1 * cos))  # E_w[q] = g1 cos(theta)
    b = mean_q if baseline == "exact" else 0.0
    # E_w[(q - b)^2]: q = g1 cos + g2 sin w_1, E_w[w_1] = 0, E_w[w_1^2] = 1 / (d - 1)
    q2 = (g1 * cos - b) ** 2 + g2**2 * sin**2 / (d - 1)
    c = a + (d - 1) * ratio(d - 2)
    # G: component along mu and along the goal's orthogonal part (the others vanish)
    grad = np.array([np.sum(weight * (g1 * cos - b) * (c * cos / sigma - 1 / sigma**2)),
                     np.sum(weight * g2 * sin**2 / (d - 1) * c / sigma)])
    score2_marginal = (c**2 - 2 * c * a) / sigma**2 + 1 / sigma**4
    radial = sigma**2 * (ratio(d + 1) - 2 * a * ratio(d)) + 1  # E[|a - mu|^2 | x]
    e2_standard = np.sum(weight * q2 * radial) / sigma**4
    e2_marginal = np.sum(weight * q2 * score2_marginal)
    g2norm = float(grad @ grad)
    var_s, var_m = float(e2_standard - g2norm), float(e2_marginal - g2norm)
    return {"d": d, "sigma": sigma, "goal_angle": goal_angle, "baseline": baseline,
            "mass": float(weight.sum()), "mean_reward": mean_q, "gradient": grad.tolist(),
            "variance_standard": var_s, "variance_marginal": var_m, "ratio": var_m / var_s}


def clipped_moments(loc: float, sigma: float, low: float = -1.0, high: float = 1.0,
                    target: float = 0.8, baseline: str = "none") -> dict[str, Any]:
    """Exact mean reward, gradient and both variances for the clipped bandit."""
    from scipy import integrate, stats

    _check_baseline(baseline)
    if not (sigma > 0 and low < high):
        raise ValueError(f"need sigma > 0 and low < high, got {sigma!r}, ({low!r}, {high!r})")
    norm = stats.norm(loc, sigma)
    p_low, p_high = norm.cdf(low), norm.sf(high)

    def pdf(a: float) -> float:  # the integrands' density (scipy's frozen pdf is slow per call)
        return math.exp(-0.5 * ((a - loc) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))

    def q(y: float) -> float:
        return -(y - target) ** 2

    def quad(fn, lo, hi):
        return integrate.quad(fn, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200)[0]

    mean_q = p_low * q(low) + p_high * q(high) + quad(lambda y: q(y) * pdf(y), low, high)
    b = mean_q if baseline == "exact" else 0.0
    # the standard estimator integrates over a; clip(a) is constant beyond the bounds
    z = lambda a: (a - loc) / sigma**2  # noqa: E731  score of N(a; loc, sigma^2)
    pieces = ((-np.inf, low), (low, high), (high, np.inf))
    grad = sum(quad(lambda a: (q(min(max(a, low), high)) - b) * z(a) * pdf(a), lo, hi)
               for lo, hi in pieces)
    e2_standard = sum(quad(lambda a: (q(min(max(a, low), high)) - b) ** 2 * z(a) ** 2
                           * pdf(a), lo, hi) for lo, hi in pieces)
    # marginal: atoms with inverse Mills ratio scores, the Gaussian score inside
    h_low = -norm.pdf(low) / p_low if p_low > 0 else 0.0  # d/dm log Phi((low - m) / sigma)
    h_high = norm.pdf(high) / p_high if p_high > 0 else 0.0  # d/dm log(1 - Phi(...))
    e2_marginal = (p_low * (q(low) - b) ** 2 * h_low**2 + p_high * (q(high) - b) ** 2 * h_high**2
                   + quad(lambda y: (q(y) - b) ** 2 * z(y) ** 2 * pdf(y), low, high))
    var_s, var_m = e2_standard - grad**2, e2_marginal - grad**2
    return {"loc": loc, "sigma": sigma, "baseline": baseline, "mean_reward": float(mean_q),
            "gradient": float(grad), "clipped_fraction": float(p_low + p_high),
            "variance_standard": float(var_s), "variance_marginal": float(var_m),
            "ratio": float(var_m / var_s)}
