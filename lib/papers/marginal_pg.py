"""Marginal policy gradients (Eisenach, Yang, Liu & Liu, ICLR 2019; arXiv 1806.05134).

**Problem.** A policy samples ``a ~ pi(. | s)`` over R^d but the environment only sees
``T(a)``: a clipped action ``clip(a, low, high)`` or a direction ``a / |a|``. The standard
estimator ``q * grad log pi(a | s)`` carries noise from the part of ``a`` that ``T`` throws
away. The *marginal policy gradient* (MPG) replaces ``pi`` by the law of ``T(a)``:

    g_standard = q(T(a)) * grad log pi(a | s)
    g_marginal = q(T(a)) * grad log (T_* pi)(T(a) | s) = E[g_standard | T(a)]

It is unbiased and, by the law of total variance (Thm 4.6), its variance is smaller by
exactly ``E[Var(g_standard | T(a))]`` (Cor. 4.7 for directions, 4.8 for clipping).

**Clipping (CAPG).** For ``a ~ N(mu, sigma^2)`` and ``y = clip(a, low, high)``::

    log p(y) = log Phi((low - mu) / sigma)       if y = low
             = log N(y; mu, sigma^2)              if low < y < high
             = log (1 - Phi((high - mu) / sigma)) if y = high

**Directions (APG).** For ``a ~ N(mu, Sigma)`` in R^d, ``x = a / |a|`` on the sphere S^{d-1}
has the *angular Gaussian* density (w.r.t. surface measure)::

    f(x; mu, Sigma) = ((2 pi)^{d-1} |Sigma| (x' S^-1 x)^d)^{-1/2}
                      * exp((alpha^2 - mu' S^-1 mu) / 2) * M_{d-1}(alpha),
    alpha = x' S^-1 mu / (x' S^-1 x)^{1/2},
    M_k(alpha) = int_0^inf u^k phi(u - alpha) du,

with ``M_0 = Phi``, ``M_1 = alpha Phi + phi``, ``M_{k+1} = alpha M_k + k M_{k-1}`` and
``M_k' = k M_{k-1}`` (integrate ``u^k (u - alpha) phi(u - alpha)`` by parts). For
``Sigma = sigma^2 I``::

    grad_mu log f = (alpha + (d-1) M_{d-2}(alpha) / M_{d-1}(alpha)) x / sigma - mu / sigma^2,
    alpha = x' mu / sigma.

The authors' public code uses ``d + 1`` where the recursion has ``k``; that mistake is
invisible when ``sigma`` is small (``alpha`` large, ``M_k ~ alpha^k``) and biases the estimator
otherwise. Here the recursion is computed in log space, stably for any ``alpha``: forward on
the ratios ``rho_k = M_k / M_{k-1}`` (``rho_{k+1} = alpha + k / rho_k``) when ``alpha >= -3``,
and for ``alpha < -3`` (where the forward recursion cancels catastrophically and ``Phi``
underflows) by the backward continued fraction ``rho_k = k / (-alpha + rho_{k+1})``.

**Experiments.** A one-step bandit measures both estimators' means and variances by Monte
Carlo; on Platform2D (``lib.rl.platform2d``) A2C trains an angular policy with the marginal
estimator (APG), the same policy with the standard estimator (bivariate Gaussian), and a
1-D Gaussian on the angle. At full scale CAPG is compared with a clipped Gaussian on a
gymnasium classic-control task. The paper's King of Glory experiment uses a proprietary
game and cannot be reproduced.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.distributions import Distribution, constraints

from lib.core import ArtifactCache, ScaleConfigs, derive_seed, make_generator
from lib.core.claims import Claim
from lib.rl import (
    A2CSettings,
    AngleHead,
    DiagonalGaussianPolicy,
    make_platform_vector_env,
    platform_transition,
    tanh_mlp,
    train_a2c,
)
from lib.rl.platform2d import PlatformGeometry

LOG_2PI = math.log(2 * math.pi)
LOG_SQRT_2PI = 0.5 * LOG_2PI
#: Below this ``alpha`` the ratios ``M_k / M_{k-1}`` come from the backward continued fraction.
CF_SPLIT = -3.0
#: Depth of that continued fraction beyond ``k`` (relative error < 1e-14 for alpha <= -3).
CF_DEPTH = 64

Estimator = Literal["standard", "marginal"]
ESTIMATORS = ("standard", "marginal")


# --------------------------------------------------------------------------------------------
# The M_k functions
# --------------------------------------------------------------------------------------------

def m_functions(alpha: torch.Tensor, k: int) -> list[torch.Tensor]:
    """``[M_0, ..., M_k](alpha)`` by the plain forward recursion, as the paper prints it.

    Exact in exact arithmetic, but it cancels for negative ``alpha`` and ``Phi`` underflows
    below about -38: use ``log_m`` for computation; this is the readable reference.
    """
    _check_order(k)
    normal = torch.distributions.Normal(0.0, 1.0)
    m = [torch.special.ndtr(alpha)]  # M_0 = Phi(alpha)
    if k >= 1:
        m.append(alpha * m[0] + normal.log_prob(alpha).exp())  # M_1 = alpha Phi + phi
    for j in range(1, k):
        m.append(alpha * m[j] + j * m[j - 1])  # M_{j+1} = alpha M_j + j M_{j-1}
    return m


def _check_order(k: int) -> None:
    if not (isinstance(k, int) and not isinstance(k, bool) and k >= 0):
        raise ValueError(f"the order k of M_k must be a non-negative int, got {k!r}")


def _log_m_pair(alpha: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log M_k, log M_{k-1})`` at ``alpha`` in float64, for ``k >= 1``, stable for any alpha.

    Computed in NumPy (no autograd needed: ``_LogM`` supplies the derivative); on the small
    batches of an A2C update this is several times faster than the same loop in torch.
    """
    from scipy.special import log_ndtr

    a = alpha.detach().cpu().double().numpy().reshape(-1)
    log_m0 = log_ndtr(a)
    # alpha >= CF_SPLIT: forward recursion on rho_j = M_j / M_{j-1} (no cancellation there).
    af = np.maximum(a, CF_SPLIT)
    rho = af + np.exp(-0.5 * af**2 - LOG_SQRT_2PI - log_ndtr(af))  # rho_1 = alpha + phi / Phi
    rhos = np.empty((k, a.size))
    rhos[0] = rho
    for j in range(1, k):
        rho = af + j / rho  # rho_{j+1} = alpha + j / rho_j
        rhos[j] = rho
    # alpha < CF_SPLIT: rho_j = j / (x + rho_{j+1}), x = -alpha > 3, run down from deep in
    # (only where needed: the continued fraction is the costly part).
    low = a < CF_SPLIT
    if low.any():
        x = -a[low]
        r = np.zeros_like(x)
        for j in range(k + CF_DEPTH, 0, -1):
            r = j / (x + r)
            if j <= k:
                rhos[j - 1, low] = r
    log_rho = np.log(rhos)
    log_mk = log_m0 + log_rho.sum(0)
    as_tensor = lambda v: torch.from_numpy(v.reshape(alpha.shape)).to(alpha.device)  # noqa: E731
    return as_tensor(log_mk), as_tensor(log_mk - log_rho[-1])


class _LogM(torch.autograd.Function):
    """``log M_k(alpha)``, and ``log(M_{k-1} / M_k)`` (not differentiable) for the backward:
    ``d/dalpha log M_k = M_k' / M_k = k M_{k-1} / M_k``."""

    @staticmethod
    def forward(alpha: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        log_mk, log_mk1 = _log_m_pair(alpha, k)
        return log_mk.to(alpha.dtype), (log_mk1 - log_mk).to(alpha.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.k = inputs[1]
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(output[1])

    @staticmethod
    def backward(ctx, grad, _grad_log_ratio):
        (log_ratio,) = ctx.saved_tensors
        return grad * ctx.k * torch.exp(log_ratio), None


def log_m(alpha: torch.Tensor, k: int) -> torch.Tensor:
    """``log M_k(alpha)``, differentiable, stable for any ``alpha`` (see the module docstring)."""
    _check_order(k)
    if k == 0:
        return torch.special.log_ndtr(alpha)
    return _LogM.apply(alpha, k)[0]


def m_ratio(alpha: torch.Tensor, k: int) -> torch.Tensor:
    """``M_{k-1}(alpha) / M_k(alpha)`` for ``k >= 1`` (so ``d/dalpha log M_k = k * m_ratio``)."""
    _check_order(k)
    if k == 0:
        raise ValueError("m_ratio needs k >= 1 (M_{-1} is not defined)")
    log_mk, log_mk1 = _log_m_pair(alpha, k)
    return torch.exp(log_mk1 - log_mk).to(alpha.dtype)


# --------------------------------------------------------------------------------------------
# The angular Gaussian distribution on S^{d-1}
# --------------------------------------------------------------------------------------------

def _check_unit(x: torch.Tensor, tol: float = 1e-4) -> None:
    if x.shape[-1] < 2:
        raise ValueError(f"directions need d >= 2 coordinates, got shape {tuple(x.shape)}")
    norm = x.norm(dim=-1)
    if not torch.all((norm - 1).abs() <= tol):
        raise ValueError("x must hold unit vectors (points of the sphere S^{d-1}); got norms in "
                         f"[{norm.min().item():.4g}, {norm.max().item():.4g}]: pass a / |a|")


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        if not torch.all(value > 0):
            raise ValueError(f"{name} must be positive everywhere")
    elif not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _as_scale(scale: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    _check_positive("scale", scale)
    s = torch.as_tensor(scale, dtype=like.dtype)
    return s.unsqueeze(-1) if s.dim() else s  # per-row scales broadcast over coordinates


def angular_gaussian_log_prob(x: torch.Tensor, loc: torch.Tensor,
                              scale: float | torch.Tensor | None = None,
                              covariance: torch.Tensor | None = None) -> torch.Tensor:
    """``log f(x; loc, Sigma)`` of ``a / |a|`` for ``a ~ N(loc, Sigma)``, on the unit sphere.

    Give either ``scale`` (``Sigma = scale^2 I``; a number or one per batch row) or a
    ``covariance`` (``(..., d, d)``, positive definite). ``x``: unit vectors ``(..., d)``.
    """
    _check_unit(x)
    d = x.shape[-1]
    if (scale is None) == (covariance is None):
        raise ValueError("give exactly one of scale (Sigma = scale^2 I) and covariance")
    if scale is not None:
        s = _as_scale(scale, loc)
        alpha = (x * loc).sum(-1) / s[..., 0] if s.dim() else (x * loc).sum(-1) / s
        c = (loc / s).pow(2).sum(-1)  # mu' S^-1 mu
        # sigma terms cancel: -d log sigma - (d/2) log(1/sigma^2) = 0
        return -0.5 * (d - 1) * LOG_2PI + 0.5 * (alpha**2 - c) + log_m(alpha, d - 1)
    chol = torch.linalg.cholesky(covariance)
    u = torch.cholesky_solve(x.unsqueeze(-1), chol)[..., 0]  # S^-1 x
    v = torch.cholesky_solve(loc.unsqueeze(-1), chol)[..., 0]  # S^-1 mu
    quad_a = (x * u).sum(-1)  # x' S^-1 x
    alpha = (x * v).sum(-1) / quad_a.sqrt()
    c = (loc * v).sum(-1)
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return (-0.5 * (d - 1) * LOG_2PI - 0.5 * log_det - 0.5 * d * torch.log(quad_a)
            + 0.5 * (alpha**2 - c) + log_m(alpha, d - 1))


def angular_gaussian_score_isotropic(x: torch.Tensor, loc: torch.Tensor,
                                     scale: float | torch.Tensor) -> torch.Tensor:
    """The APG score ``grad_mu log f(x; mu, sigma^2 I)``::

        (alpha + (d-1) M_{d-2}(alpha) / M_{d-1}(alpha)) x / sigma - mu / sigma^2
    """
    _check_unit(x)
    d = x.shape[-1]
    s = _as_scale(scale, loc)
    alpha = ((x * loc).sum(-1, keepdim=True) / s)
    factor = alpha + (d - 1) * m_ratio(alpha, d - 1)
    return factor * x / s - loc / s**2


def angular_gaussian_score(x: torch.Tensor, loc: torch.Tensor, covariance: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grad_mu, grad_Sigma)`` of ``log f(x; mu, Sigma)`` in closed form.

    With ``P = Sigma^-1``, ``u = P x``, ``v = P mu``, ``A = x'u`` and
    ``c = alpha + (d-1) M_{d-2} / M_{d-1}``::

        grad_mu    = c u / sqrt(A) - v
        grad_Sigma = -P/2 + d uu'/(2A) + c (alpha uu'/(2A) - (uv' + vu')/(2 sqrt(A))) + vv'/2

    ``grad_Sigma`` is the symmetric matrix ``G`` with ``d log f = tr(G dSigma)``.
    """
    _check_unit(x)
    d = x.shape[-1]
    chol = torch.linalg.cholesky(covariance)
    u = torch.cholesky_solve(x.unsqueeze(-1), chol)[..., 0]
    v = torch.cholesky_solve(loc.unsqueeze(-1), chol)[..., 0]
    quad_a = (x * u).sum(-1)[..., None, None]
    root_a = quad_a.sqrt()
    alpha = (x * v).sum(-1)[..., None, None] / root_a
    c = alpha + (d - 1) * m_ratio(alpha, d - 1)
    grad_mu = c[..., 0] * u / root_a[..., 0] - v
    uu = u.unsqueeze(-1) * u.unsqueeze(-2)
    uv = u.unsqueeze(-1) * v.unsqueeze(-2)
    vv = v.unsqueeze(-1) * v.unsqueeze(-2)
    precision = torch.cholesky_inverse(chol)
    grad_sigma = (-0.5 * precision + d * uu / (2 * quad_a)
                  + c * (alpha * uu / (2 * quad_a) - (uv + uv.transpose(-1, -2)) / (2 * root_a))
                  + 0.5 * vv)
    return grad_mu, grad_sigma


class AngularGaussian(Distribution):
    """The angular (projected) Gaussian: the law of ``a / |a|`` for ``a ~ N(loc, Sigma)``."""

    arg_constraints = {"loc": constraints.real_vector}
    support = constraints.real_vector  # the unit sphere S^{d-1}, checked in log_prob
    has_rsample = False

    def __init__(self, loc: torch.Tensor, scale: float | torch.Tensor | None = None,
                 covariance: torch.Tensor | None = None):
        if (scale is None) == (covariance is None):
            raise ValueError("give exactly one of scale (Sigma = scale^2 I) and covariance")
        if loc.shape[-1] < 2:
            raise ValueError(f"directions need d >= 2, got loc of shape {tuple(loc.shape)}")
        if scale is not None:
            _check_positive("scale", scale)
        self.loc, self.scale, self.covariance = loc, scale, covariance
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    def sample(self, sample_shape: tuple[int, ...] = (),
               generator: torch.Generator | None = None) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        eps = torch.randn(shape, generator=generator, dtype=self.loc.dtype)
        if self.covariance is not None:
            eps = (torch.linalg.cholesky(self.covariance) @ eps.unsqueeze(-1))[..., 0]
        else:
            eps = _as_scale(self.scale, self.loc) * eps
        a = self.loc.detach() + eps
        return a / a.norm(dim=-1, keepdim=True)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return angular_gaussian_log_prob(value, self.loc, self.scale, self.covariance)

    def score_loc(self, value: torch.Tensor) -> torch.Tensor:
        if self.covariance is None:
            return angular_gaussian_score_isotropic(value, self.loc, self.scale)
        return angular_gaussian_score(value, self.loc, self.covariance)[0]


# --------------------------------------------------------------------------------------------
# Clipped actions (CAPG)
# --------------------------------------------------------------------------------------------

def _check_bounds(low: float, high: float) -> None:
    if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low < high):
        raise ValueError(f"clipping bounds must be numbers with low < high, "
                         f"got ({low!r}, {high!r})")


def clipped_gaussian_log_prob(y: torch.Tensor, loc: torch.Tensor, scale: float,
                              low: float, high: float) -> torch.Tensor:
    """Elementwise ``log p(y)`` of ``y = clip(a, low, high)``, ``a ~ N(loc, scale^2)`` (CAPG).

    The law of ``y`` has atoms at the bounds and a density inside: ``log Phi((low-mu)/sigma)``
    at ``y = low``, ``log N(y; mu, sigma^2)`` inside, ``log(1 - Phi((high-mu)/sigma))`` at
    ``y = high``. Values outside ``[low, high]`` count as the nearer bound.
    """
    _check_bounds(low, high)
    _check_positive("scale", scale)
    inside = -0.5 * ((y - loc) / scale) ** 2 - math.log(scale) - LOG_SQRT_2PI
    at_low = torch.special.log_ndtr((low - loc) / scale)  # log P(a <= low)
    at_high = torch.special.log_ndtr((loc - high) / scale)  # log P(a >= high)
    return torch.where(y <= low, at_low, torch.where(y >= high, at_high, inside))


def clipped_gaussian_score_loc(y: torch.Tensor, loc: torch.Tensor, scale: float,
                               low: float, high: float) -> torch.Tensor:
    """``d/dmu`` of ``clipped_gaussian_log_prob``: inverse Mills ratios at the bounds."""
    z_low, z_high = (low - loc) / scale, (loc - high) / scale
    hazard_low = torch.exp(-0.5 * z_low**2 - LOG_SQRT_2PI - torch.special.log_ndtr(z_low))
    hazard_high = torch.exp(-0.5 * z_high**2 - LOG_SQRT_2PI - torch.special.log_ndtr(z_high))
    return torch.where(y <= low, -hazard_low / scale,
                       torch.where(y >= high, hazard_high / scale, (y - loc) / scale**2))


# --------------------------------------------------------------------------------------------
# The two estimators as policies an A2C loss can use
# --------------------------------------------------------------------------------------------

def _check_estimator(estimator: str) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; valid ones are {', '.join(ESTIMATORS)}")


class DirectionalGaussianPolicy(DiagonalGaussianPolicy):
    """``a ~ N(loc, scale^2 I)``, the environment sees ``T(a) = a / |a|``.

    ``log_prob(a)`` is ``log N(a)`` for the ``standard`` estimator and the angular Gaussian
    ``log f(a / |a|)`` for the ``marginal`` one (APG): same actions, same policy, the loss
    differs only in which density it differentiates.
    """

    def __init__(self, loc: torch.Tensor, scale: float, estimator: Estimator = "marginal"):
        _check_estimator(estimator)
        super().__init__(loc, scale)
        self.estimator = estimator

    def env_action(self, value: torch.Tensor) -> torch.Tensor:
        return value / value.norm(dim=-1, keepdim=True)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self.estimator == "standard":
            return super().log_prob(value)
        return angular_gaussian_log_prob(self.env_action(value), self.loc, self.scale)

    def score_loc(self, value: torch.Tensor) -> torch.Tensor:
        if self.estimator == "standard":
            return super().score_loc(value)
        return angular_gaussian_score_isotropic(self.env_action(value), self.loc, self.scale)


class ClippedGaussianPolicy(DiagonalGaussianPolicy):
    """``a ~ N(loc, scale^2 I)``, the environment sees ``clip(a, low, high)``.

    ``log_prob(a)`` is ``log N(a)`` (``standard``) or the CAPG log-probability of the clipped
    action (``marginal``), summed over coordinates.
    """

    def __init__(self, loc: torch.Tensor, scale: float, low: float, high: float,
                 estimator: Estimator = "marginal"):
        _check_estimator(estimator)
        _check_bounds(low, high)
        super().__init__(loc, scale)
        self.low, self.high, self.estimator = low, high, estimator

    def env_action(self, value: torch.Tensor) -> torch.Tensor:
        return value.clamp(self.low, self.high)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self.estimator == "standard":
            return super().log_prob(value)
        return clipped_gaussian_log_prob(self.env_action(value), self.loc, self.scale,
                                         self.low, self.high).sum(-1)

    def score_loc(self, value: torch.Tensor) -> torch.Tensor:
        if self.estimator == "standard":
            return super().score_loc(value)
        return clipped_gaussian_score_loc(self.env_action(value), self.loc, self.scale,
                                          self.low, self.high)


@dataclass(frozen=True)
class DirectionalHead:
    """Policy head ``loc -> DirectionalGaussianPolicy`` (``loc_dim`` = the dimension d)."""

    scale: float
    loc_dim: int = 2
    estimator: Estimator = "marginal"

    def __post_init__(self):
        _check_estimator(self.estimator)
        _check_positive("scale", self.scale)

    def __call__(self, loc: torch.Tensor) -> DirectionalGaussianPolicy:
        return DirectionalGaussianPolicy(loc, self.scale, self.estimator)


@dataclass(frozen=True)
class ClippedHead:
    """Policy head ``loc -> ClippedGaussianPolicy``."""

    scale: float
    low: float
    high: float
    loc_dim: int = 1
    estimator: Estimator = "marginal"

    def __post_init__(self):
        _check_estimator(self.estimator)
        _check_bounds(self.low, self.high)
        _check_positive("scale", self.scale)

    def __call__(self, loc: torch.Tensor) -> ClippedGaussianPolicy:
        return ClippedGaussianPolicy(loc, self.scale, self.low, self.high, self.estimator)


# --------------------------------------------------------------------------------------------
# Experiment 1: one-step bandits, Monte Carlo
# --------------------------------------------------------------------------------------------

def _moments(g: torch.Tensor) -> dict[str, Any]:
    """Mean, its standard error and the total variance ``tr Cov`` of per-sample estimates."""
    n = g.shape[0]
    var = g.var(dim=0)
    return {"mean": g.mean(0).tolist(), "se": (var / n).sqrt().tolist(),
            "total_variance": float(var.sum())}


def _compare(standard: torch.Tensor, marginal: torch.Tensor, truth: list[float],
             truth_se: list[float]) -> dict[str, Any]:
    s, m = _moments(standard), _moments(marginal)
    t, ts = torch.tensor(truth), torch.tensor(truth_se)

    def z(est):  # largest |z|-score of an estimator's mean against the reference gradient
        return float(((torch.tensor(est["mean"]) - t).abs()
                      / (torch.tensor(est["se"]) ** 2 + ts**2).sqrt()).max())

    return {"standard": s, "marginal": m, "truth": truth, "truth_se": truth_se,
            "z_standard": z(s), "z_marginal": z(m),
            "variance_ratio": m["total_variance"] / s["total_variance"]}


def directional_bandit(d: int, sigma: float, n_samples: int, seed: int = 0,
                       target_angle: float = math.pi / 3) -> dict[str, Any]:
    """Both estimators of ``grad_mu E[q(a / |a|)]`` on a one-step bandit, by Monte Carlo.

    ``a ~ N(mu, sigma^2 I)`` with ``mu = e_1`` (so ``sigma`` is ``sigma / |mu|``), reward
    ``q(x) = <x, g>`` for a unit target ``g`` at ``target_angle`` from ``mu``. The reference
    gradient is the pathwise (reparameterisation) estimator ``(I - x x') g / |a|``, unbiased
    and independent of both estimators. The variance ratio is ``tr Cov(g_marginal) /
    tr Cov(g_standard)``; it tends to ``(d - 1) / d`` as ``sigma / |mu| -> 0``: the radial
    coordinate, which ``T`` discards, is one of d equally noisy coordinates.
    """
    if not (isinstance(d, int) and d >= 2):
        raise ValueError(f"d must be an int >= 2, got {d!r}")
    _check_positive("sigma", sigma)
    gen = make_generator(derive_seed(seed, "directional", d, sigma))
    loc = torch.zeros(d, dtype=torch.float64)
    loc[0] = 1.0
    target = torch.zeros(d, dtype=torch.float64)
    target[0], target[1] = math.cos(target_angle), math.sin(target_angle)
    a = loc + sigma * torch.randn(n_samples, d, generator=gen, dtype=torch.float64)
    radius = a.norm(dim=-1, keepdim=True)
    x = a / radius
    q = (x * target).sum(-1, keepdim=True)
    standard = q * (a - loc) / sigma**2  # q grad log N(a; mu, sigma^2 I)
    marginal = q * angular_gaussian_score_isotropic(x, loc.expand_as(x), sigma)  # q grad log f(x)
    pathwise = (target - q * x) / radius  # d q(x(mu + sigma eps)) / d mu
    path = _moments(pathwise)
    return {"d": d, "sigma": sigma, **_compare(standard, marginal, path["mean"], path["se"])}


def clipped_bandit(loc: float, sigma: float, n_samples: int, seed: int = 0, low: float = -1.0,
                   high: float = 1.0, target: float = 0.8) -> dict[str, Any]:
    """Both estimators of ``d/dmu E[q(clip(a))]`` for ``a ~ N(loc, sigma^2)``, by Monte Carlo.

    Reward ``q(y) = -(y - target)^2``. The reference gradient is exact:
    ``E[q(clip(a)) (a - mu) / sigma^2]`` by adaptive quadrature (scipy).
    """
    from scipy import integrate

    _check_bounds(low, high)
    _check_positive("sigma", sigma)
    gen = make_generator(derive_seed(seed, "clipped", loc, sigma))
    mu = torch.tensor(loc, dtype=torch.float64)
    a = mu + sigma * torch.randn(n_samples, 1, generator=gen, dtype=torch.float64)
    y = a.clamp(low, high)
    q = -(y - target) ** 2
    standard = q * (a - mu) / sigma**2
    marginal = q * clipped_gaussian_score_loc(y, mu, sigma, low, high)

    def integrand(v):
        density = math.exp(-0.5 * ((v - loc) / sigma) ** 2 - LOG_SQRT_2PI) / sigma
        return -(min(max(v, low), high) - target) ** 2 * (v - loc) / sigma**2 * density

    exact = sum(integrate.quad(integrand, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
                for lo, hi in ((-np.inf, low), (low, high), (high, np.inf)))
    out = _compare(standard, marginal, [exact], [0.0])
    clipped = float(((a <= low) | (a >= high)).double().mean())
    return {"loc": loc, "sigma": sigma, "clipped_fraction": clipped, **out}


# --------------------------------------------------------------------------------------------
# Experiment 2: Platform2D with A2C
# --------------------------------------------------------------------------------------------

#: The three policies of the Platform2D experiment (names as in the chapter's legend).
PLATFORM_METHODS = ("APG", "Gaussian", "angle")


def platform_head(method: str, sigma: float, angle_sigma: float):
    """The policy head of a Platform2D method: APG and Gaussian share one policy."""
    if method == "APG":
        return DirectionalHead(sigma, 2, "marginal")
    if method == "Gaussian":
        return DirectionalHead(sigma, 2, "standard")
    if method == "angle":
        return AngleHead(angle_sigma)
    raise ValueError(f"unknown method {method!r}; valid ones are {', '.join(PLATFORM_METHODS)}")


def _platform_geometry(cfg: MarginalPGConfig) -> dict[str, Any]:
    return {"half_width": cfg.half_width, "step_size": cfg.step_size,
            "goal_radius": cfg.goal_radius, "max_episode_steps": cfg.max_episode_steps}


def _a2c_settings(cfg: MarginalPGConfig, updates: int, n_envs: int) -> A2CSettings:
    every = max(1, updates // cfg.variance_points) if cfg.variance_points else 0
    return A2CSettings(n_envs=n_envs, n_steps=cfg.n_steps, updates=updates, gamma=cfg.gamma,
                       lr=cfg.lr, hidden=cfg.hidden, value_coef=cfg.value_coef,
                       max_grad_norm=cfg.max_grad_norm, snapshot_every=every)


def platform_gradient_variance(actor_state: dict[str, torch.Tensor],
                               critic_state: dict[str, torch.Tensor], cfg: MarginalPGConfig,
                               seed: int = 0) -> dict[str, float]:
    """Variance of both estimators' actor-parameter gradients at one point of training.

    States come from rolling the snapshot policy out from the start; at each of them
    ``cfg.variance_actions`` actions are drawn and scored with the one-step advantage
    ``r + gamma V(s') - V(s)`` of the snapshot critic. The gradient w.r.t. the actor's
    parameters is ``J(s)' adv * score_mu``, so its variance over actions at a state is
    ``tr(J J' Cov_a[adv * score_mu])``; these are averaged over states for both estimators.
    """
    geometry = PlatformGeometry(cfg.half_width, cfg.step_size, cfg.goal_radius)
    actor = tanh_mlp(2, 2, cfg.hidden).double()
    actor.load_state_dict(actor_state)
    critic = tanh_mlp(2, 1, cfg.hidden).double()
    critic.load_state_dict(critic_state)
    gen = make_generator(derive_seed(seed, "variance-probe"))
    head = DirectionalHead(cfg.sigma, 2, "marginal")
    # on-policy states: roll the policy out (native vector env), keep every visited state
    envs = make_platform_vector_env(cfg.variance_states, **_platform_geometry(cfg))
    obs, _ = envs.reset(seed=0)
    states = []
    for _ in range(cfg.variance_rollout):
        states.append(obs)
        with torch.no_grad():
            dist = head(actor(torch.as_tensor(obs, dtype=torch.float64)))
            obs, *_ = envs.step(dist.env_action(dist.sample(generator=gen)).numpy())
    s = torch.as_tensor(np.concatenate(states), dtype=torch.float64)
    k = cfg.variance_actions
    with torch.no_grad():
        loc = actor(s)
        a = loc[:, None] + cfg.sigma * torch.randn(len(s), k, 2, generator=gen, dtype=s.dtype)
        s_rep = s[:, None].expand(-1, k, -1).reshape(-1, 2).numpy()
        nxt, reward, terminated = platform_transition(s_rep, a.reshape(-1, 2).numpy(), geometry)
        v_next = critic(torch.as_tensor(nxt))[:, 0] * torch.as_tensor(~terminated)
        adv = (torch.as_tensor(reward) + cfg.gamma * v_next).view(len(s), k) - critic(s)
    var_std, var_mpg = estimator_gradient_variance(actor, s, a, adv, cfg.sigma)
    mu_std, mu_mpg = estimator_gradient_variance(None, s, a, adv, cfg.sigma, loc=loc)
    return {"variance_standard": var_std, "variance_marginal": var_mpg, "ratio": var_mpg / var_std,
            "ratio_loc_space": mu_mpg / mu_std, "mean_abs_loc": float(loc.norm(dim=-1).mean())}


def estimator_gradient_variance(actor: torch.nn.Module | None, states: torch.Tensor,
                                actions: torch.Tensor, advantages: torch.Tensor, sigma: float,
                                loc: torch.Tensor | None = None) -> tuple[float, float]:
    """Mean over states of the variance over actions of ``adv * grad log pi(a | s)``.

    ``actions``: ``(states, k, d)`` raw Gaussian actions, ``advantages``: ``(states, k)``.
    Returns ``(standard, marginal)`` total variances (trace of the covariance) of the gradient
    w.r.t. the actor's parameters: with ``J(s) = d loc / d theta`` that is
    ``tr(J J' Cov_a[adv * score_loc])``. With ``actor=None`` (and ``loc`` given) ``J = I``:
    the variance of the gradient w.r.t. the policy mean itself.
    """
    with torch.no_grad():
        if loc is None:
            loc = actor(states)
        loc_k = loc[:, None].expand_as(actions)
        x = actions / actions.norm(dim=-1, keepdim=True)
        g_std = advantages[..., None] * (actions - loc_k) / sigma**2
        g_mpg = advantages[..., None] * angular_gaussian_score_isotropic(x, loc_k, sigma)
    d = actions.shape[-1]
    if actor is None:
        gram = torch.eye(d, dtype=actions.dtype).expand(len(states), d, d)
    else:
        params = {n: p.detach() for n, p in actor.named_parameters()}

        def loc_of(p, state):
            return torch.func.functional_call(actor, p, (state[None],))[0]

        jac = torch.func.vmap(torch.func.jacrev(loc_of), in_dims=(None, 0))(params, states)
        flat = torch.cat([j.reshape(len(states), d, -1) for j in jac.values()], dim=-1)
        gram = flat @ flat.transpose(1, 2)  # J J', (states, d, d)
    k = actions.shape[1]

    def variance(g):
        centred = g - g.mean(1, keepdim=True)
        cov = centred.transpose(1, 2) @ centred / (k - 1)
        return float((gram * cov).sum((1, 2)).mean())

    return variance(g_std), variance(g_mpg)


def train_platform(cfg: MarginalPGConfig, method: str, seed: int = 0, *,
                   show_progress: bool | None = None) -> dict[str, Any]:
    """A2C on Platform2D with one method and seed; episodes and variance ratios (no cache)."""
    head = platform_head(method, cfg.sigma, cfg.angle_sigma)
    envs = make_platform_vector_env(cfg.n_envs, **_platform_geometry(cfg))
    settings = _a2c_settings(cfg, cfg.updates, cfg.n_envs)
    if method == "angle":
        settings = A2CSettings(**{**settings.__dict__, "snapshot_every": 0})
    result = train_a2c(envs, head, settings, seed, show_progress=show_progress,
                       desc=f"Platform2D {method} seed {seed}")
    probes = []
    for snap in result.snapshots:
        start = time.perf_counter()
        actor = {k: v.double() for k, v in snap["actor"].items()}
        critic = {k: v.double() for k, v in snap["critic"].items()}
        probe = platform_gradient_variance(actor, critic, cfg, derive_seed(seed, snap["update"]))
        probes.append({"update": snap["update"], "env_steps": snap["env_steps"], **probe,
                       "seconds": time.perf_counter() - start})
    ep = result.episodes
    return {"method": method, "seed": seed,
            "env_steps": torch.tensor([e["env_steps"] for e in ep], dtype=torch.long),
            "returns": torch.tensor([e["return"] for e in ep], dtype=torch.float64),
            "lengths": torch.tensor([e["length"] for e in ep], dtype=torch.long),
            "variance": probes, "train_seconds": result.wall_time_s,
            "total_env_steps": cfg.updates * cfg.n_envs * cfg.n_steps}



def _platform_key(cfg: MarginalPGConfig, method: str, seed: int) -> dict[str, Any]:
    fields = ("sigma", "angle_sigma", "half_width", "step_size", "goal_radius",
              "max_episode_steps", "n_envs", "n_steps", "updates", "gamma", "lr", "hidden",
              "value_coef", "max_grad_norm", "variance_points", "variance_states",
              "variance_rollout", "variance_actions")
    return {"config": {f: getattr(cfg, f) for f in fields}, "method": method, "seed": seed}


def platform_run(cfg: MarginalPGConfig, method: str, seed: int = 0,
                 cache: ArtifactCache | None = None,
                 show_progress: bool | None = None) -> dict[str, Any]:
    """``train_platform`` through the artifact cache (trained once, then loaded)."""
    cache = cache or ArtifactCache()
    return cache.get_or_create(
        "marginal_pg-platform", _platform_key(cfg, method, seed),
        lambda: train_platform(cfg, method, seed, show_progress=show_progress))


def platform_is_cached(cfg: MarginalPGConfig, method: str, seed: int = 0,
                       cache: ArtifactCache | None = None) -> bool:
    return (cache or ArtifactCache()).contains("marginal_pg-platform",
                                               _platform_key(cfg, method, seed),
                                               code=[platform_run])


def learning_curve(run: dict[str, Any], total_env_steps: int, bins: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mean episode return per bin of environment steps (NaN where no episode ended)."""
    edges = np.linspace(0, total_env_steps, bins + 1)
    steps, returns = run["env_steps"].numpy(), run["returns"].numpy()
    idx = np.clip(np.digitize(steps, edges[1:-1]), 0, bins - 1)
    means = np.full(bins, np.nan)
    for b in range(bins):
        if np.any(idx == b):
            means[b] = returns[idx == b].mean()
    return (edges[:-1] + edges[1:]) / 2, means


def final_return(run: dict[str, Any], total_env_steps: int, fraction: float = 0.25) -> float:
    """Mean return of the episodes that ended in the last ``fraction`` of training."""
    steps, returns = run["env_steps"].numpy(), run["returns"].numpy()
    late = steps > (1 - fraction) * total_env_steps
    return float(returns[late].mean()) if late.any() else float("nan")


def success_rate(run: dict[str, Any], total_env_steps: int, max_return: float,
                 fraction: float = 0.25) -> float:
    """Fraction of late episodes that reached the goal (return >= the maximum return)."""
    steps, returns = run["env_steps"].numpy(), run["returns"].numpy()
    late = steps > (1 - fraction) * total_env_steps
    return float((returns[late] >= max_return - 1e-9).mean()) if late.any() else float("nan")


def summarize_runs(runs: dict[str, list[dict[str, Any]]], max_return: float | None = None,
                   fraction: float = 0.25) -> dict[str, dict[str, Any]]:
    """Per method: final return per seed (last ``fraction`` of steps), its mean and spread."""
    out = {}
    for method, seeds in runs.items():
        finals = np.array([final_return(r, r["total_env_steps"], fraction) for r in seeds])
        entry = {"final_per_seed": finals.tolist(), "final_mean": float(np.nanmean(finals)),
                 "final_std": float(np.nanstd(finals)), "final_min": float(np.nanmin(finals)),
                 "final_max": float(np.nanmax(finals)), "seeds": [r["seed"] for r in seeds]}
        if max_return is not None:
            success = [success_rate(r, r["total_env_steps"], max_return, fraction) for r in seeds]
            entry["success_per_seed"] = success
            entry["success_mean"] = float(np.nanmean(success))
        out[method] = entry
    return out


def variance_along_training(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Flat rows (method, seed, env_steps, ratio, ...) of every gradient-variance probe."""
    return [{"method": method, "seed": r["seed"], **{k: v for k, v in p.items() if k != "seconds"}}
            for method, seeds in runs.items() for r in seeds for p in r["variance"]]


# --------------------------------------------------------------------------------------------
# Full scale: CAPG on a gymnasium classic-control task
# --------------------------------------------------------------------------------------------

#: The two policies of the clipped-action experiment.
CONTROL_METHODS = ("CAPG", "clipped Gaussian")


def train_control(cfg: MarginalPGConfig, method: str, seed: int = 0, *,
                  show_progress: bool | None = None) -> dict[str, Any]:
    """A2C with CAPG or the standard estimator on ``cfg.control_env`` (actions clipped)."""
    import gymnasium as gym

    if method not in CONTROL_METHODS:
        raise ValueError(f"unknown method {method!r}; valid ones are {', '.join(CONTROL_METHODS)}")
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.TransformReward(gym.make(cfg.control_env),
                                              lambda r: cfg.control_reward_scale * r)
         for _ in range(cfg.control_n_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    space = envs.single_action_space
    low, high = float(space.low[0]), float(space.high[0])
    head = ClippedHead(cfg.control_sigma, low, high, int(space.shape[0]),
                       "marginal" if method == "CAPG" else "standard")
    settings = A2CSettings(**{**_a2c_settings(cfg, cfg.control_updates, cfg.control_n_envs)
                              .__dict__, "snapshot_every": 0, "gamma": cfg.control_gamma})
    result = train_a2c(envs, head, settings, seed, show_progress=show_progress,
                       desc=f"{cfg.control_env} {method} seed {seed}")
    envs.close()
    ep = result.episodes
    return {"method": method, "seed": seed,
            "env_steps": torch.tensor([e["env_steps"] for e in ep], dtype=torch.long),
            "returns": torch.tensor([e["return"] / cfg.control_reward_scale for e in ep],
                                    dtype=torch.float64),
            "train_seconds": result.wall_time_s,
            "total_env_steps": cfg.control_updates * cfg.control_n_envs * cfg.n_steps}


def control_run(cfg: MarginalPGConfig, method: str, seed: int = 0,
                cache: ArtifactCache | None = None,
                show_progress: bool | None = None) -> dict[str, Any]:
    """``train_control`` through the artifact cache."""
    fields = ("control_env", "control_sigma", "control_updates", "control_n_envs",
              "control_reward_scale", "control_gamma", "n_steps", "lr", "hidden", "value_coef",
              "max_grad_norm")
    key = {"config": {f: getattr(cfg, f) for f in fields}, "method": method, "seed": seed}
    return (cache or ArtifactCache()).get_or_create(
        "marginal_pg-control", key,
        lambda: train_control(cfg, method, seed, show_progress=show_progress))


# --------------------------------------------------------------------------------------------
# Configs and the chapter's entry point
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MarginalPGConfig:
    """Knobs of the chapter (bandits, Platform2D, classic control)."""

    # one-step bandits
    bandit_samples: int
    bandit_dims: tuple[int, ...]
    bandit_sigmas: tuple[float, ...]  # sigma / |mu|
    clip_locs: tuple[float, ...]
    clip_sigma: float
    # Platform2D geometry (Our reading: the paper prints none of these but the platform)
    half_width: float
    step_size: float
    goal_radius: float
    max_episode_steps: int
    # policies
    sigma: float  # the fixed sigma of the bivariate policy (APG and Gaussian)
    angle_sigma: float  # the fixed sigma of the 1-D angle policy (radians)
    # A2C
    seeds: int
    n_envs: int
    n_steps: int
    updates: int
    gamma: float
    lr: float
    hidden: tuple[int, ...]
    value_coef: float
    max_grad_norm: float
    # gradient-variance probe along training
    variance_points: int
    variance_states: int
    variance_rollout: int
    variance_actions: int
    curve_bins: int
    # clipped actions on classic control (0 updates: skipped)
    control_env: str
    control_updates: int
    control_seeds: int
    control_n_envs: int
    control_sigma: float
    control_reward_scale: float
    control_gamma: float  # Our reading: Pendulum is usually trained with a short horizon


_COMMON = dict(bandit_dims=(2, 3, 5), clip_sigma=1.0, half_width=1.5, gamma=0.99,
               value_coef=0.5, max_grad_norm=1.0, control_env="Pendulum-v1",
               control_sigma=0.5, control_reward_scale=0.1, control_gamma=0.9)

CONFIGS = ScaleConfigs(
    smoke=MarginalPGConfig(
        bandit_samples=4_000, bandit_sigmas=(0.1, 1.0), clip_locs=(-1.5, 0.0, 1.5),
        step_size=0.1, goal_radius=0.1, max_episode_steps=100, sigma=0.3, angle_sigma=0.3,
        seeds=2, n_envs=8, n_steps=5, updates=40, lr=1e-3, hidden=(16, 16),
        variance_points=2, variance_states=8, variance_rollout=4, variance_actions=16,
        curve_bins=6, control_updates=0, control_seeds=0, control_n_envs=4, **_COMMON),
    tutorial=MarginalPGConfig(
        bandit_samples=50_000, bandit_sigmas=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
        clip_locs=(-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0),
        step_size=0.1, goal_radius=0.1, max_episode_steps=1000, sigma=0.3, angle_sigma=0.3,
        seeds=5, n_envs=16, n_steps=5, updates=600, lr=1e-3, hidden=(32, 32),
        variance_points=6, variance_states=16, variance_rollout=16, variance_actions=64,
        curve_bins=16, control_updates=0, control_seeds=0, control_n_envs=8, **_COMMON),
    full=MarginalPGConfig(
        bandit_samples=1_000_000, bandit_sigmas=(0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
        clip_locs=tuple(np.round(np.linspace(-2.5, 2.5, 21), 2).tolist()),
        step_size=0.01, goal_radius=0.01, max_episode_steps=10_000, sigma=0.3,
        angle_sigma=0.3, seeds=10, n_envs=32, n_steps=10, updates=5_000, lr=1e-3,
        hidden=(32, 32), variance_points=20, variance_states=32, variance_rollout=64,
        variance_actions=256, curve_bins=40, control_updates=8_000, control_seeds=5,
        control_n_envs=16, **_COMMON),
)


def run_bandits(cfg: MarginalPGConfig, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Experiment 1: both bandits over the config's grid."""
    directional = [directional_bandit(d, s, cfg.bandit_samples, seed)
                   for d in cfg.bandit_dims for s in cfg.bandit_sigmas]
    clipped = [clipped_bandit(m, cfg.clip_sigma, cfg.bandit_samples, seed) for m in cfg.clip_locs]
    return {"directional": directional, "clipped": clipped}


def run(config: MarginalPGConfig, seed: int = 0, cache: ArtifactCache | None = None,
        show_progress: bool | None = None) -> dict[str, Any]:
    """Everything the chapter shows: bandits, Platform2D runs over seeds, control runs."""
    seeds = [seed + i for i in range(config.seeds)]
    platform = {m: [platform_run(config, m, s, cache, show_progress) for s in seeds]
                for m in PLATFORM_METHODS}
    control = {m: [control_run(config, m, seed + i, cache, show_progress)
                   for i in range(config.control_seeds)]
               for m in CONTROL_METHODS} if config.control_updates else {}
    return {"bandits": run_bandits(config, seed), "platform": platform, "control": control}


# ------------------------------------------------------------------------------ claims
CLAIMS = [
    Claim.interval("marginal_pg", "variance-ratio",
                   "Marginal / standard policy-gradient variance on Platform2D",
                   paper="about 1/2", prefix="platform_variance_ratio",
                   target=(0.4, 0.6), unit="variance ratio"),
    Claim.interval("marginal_pg", "apg-return",
                   "APG reaches a higher final return than the Gaussian policy on Platform2D",
                   paper="APG best; Gaussian and angle policies fall short",
                   prefix="return_apg_vs_gaussian", paper_effect=0.5, unit="return difference"),
]
DATA_PARALLEL = False
