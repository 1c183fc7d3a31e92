"""The angular (projected) Gaussian on the sphere S^{d-1}: density, score and the M_k functions.

If ``a ~ N(mu, Sigma)`` in R^d, the direction ``x = a / |a|`` has, with respect to the surface
measure of S^{d-1}, the density (Eisenach et al. 2019, Sec. 5; Watson 1983)::

    f(x; mu, Sigma) = ((2 pi)^{d-1} |Sigma| (x' S^-1 x)^d)^{-1/2}
                      * exp((alpha^2 - mu' S^-1 mu) / 2) * M_{d-1}(alpha),
    alpha = x' S^-1 mu / (x' S^-1 x)^{1/2},
    M_k(alpha) = int_0^inf u^k phi(u - alpha) du,

with ``M_0 = Phi``, ``M_1 = alpha Phi + phi``, ``M_{k+1} = alpha M_k + k M_{k-1}`` and
``M_k' = k M_{k-1}`` (integrate ``u^k (u - alpha) phi(u - alpha)`` by parts). For
``Sigma = sigma^2 I`` the score in the mean is::

    grad_mu log f = (alpha + (d-1) M_{d-2}(alpha) / M_{d-1}(alpha)) x / sigma - mu / sigma^2,
    alpha = x' mu / sigma.

The authors' public code uses ``d + 1`` where the recursion has ``k``; that mistake is
invisible when ``sigma`` is small (``alpha`` large, ``M_k ~ alpha^k``) and biases the estimator
otherwise.

**Computing log M_k.** The plain recursion cancels for negative ``alpha`` (a direction that
points away from the mean) and ``Phi`` underflows below about -38. Here ``log M_k`` is
``log Phi(alpha) + sum_j log rho_j`` over the ratios ``rho_j = M_j / M_{j-1}``, computed

* forward, ``rho_{j+1} = alpha + j / rho_j``, where ``alpha >= -min(3, 6 / sqrt(k))``: all
  terms are positive for ``alpha >= 0``; for negative ``alpha`` a rounding error grows by about
  ``exp(2 |alpha| sqrt(k))`` over the k steps, which that bound keeps below ``e^12`` (a fixed
  split at -3, as in an earlier version, lost 2% at ``k = 49`` and gave NaN beyond);
* otherwise by the backward continued fraction ``rho_j = j / (-alpha + rho_{j+1})`` (all terms
  positive), started deep enough that its truncation error, about
  ``exp(-2 |alpha| (sqrt(k + depth) - sqrt(k)))``, is below ``e^-40``.

Accuracy (tested against 50-digit parabolic-cylinder values from mpmath, on both sides of the
split): the error of ``log M_k`` is below ``1e-11 * max(1, |log M_k|)`` for ``k <= 100`` and
``alpha`` in ``[-1e4, 1e5]``; larger ``k`` is untested. The continued fraction costs about
``18 k`` steps for large ``k`` (70-80 steps for ``k <= 4``), only for the entries below the split.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.distributions import Distribution, constraints

LOG_2PI = math.log(2 * math.pi)
LOG_SQRT_2PI = 0.5 * LOG_2PI
#: The forward recursion runs where ``alpha >= -min(FORWARD_SPLIT, FORWARD_GROWTH / sqrt(k))``.
FORWARD_SPLIT = 3.0
FORWARD_GROWTH = 6.0
#: The continued fraction runs until its truncation error is below ``exp(-CF_EXPONENT)``.
CF_EXPONENT = 40.0


def forward_threshold(k: int) -> float:
    """The ``alpha`` at and above which ``log_m`` uses the forward recursion for order ``k``."""
    _check_order(k)
    return -min(FORWARD_SPLIT, FORWARD_GROWTH / math.sqrt(k)) if k else -FORWARD_SPLIT


def continued_fraction_depth(alpha: float, k: int) -> int:
    """Steps beyond ``k`` the continued fraction needs at ``alpha < 0`` (module docstring)."""
    x = abs(alpha)
    return int(math.ceil((math.sqrt(k) + 0.5 * CF_EXPONENT / x) ** 2 - k)) + 8


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
    """``(log M_k, log M_{k-1})`` at ``alpha`` in float64, for ``k >= 1`` (module docstring).

    Computed in NumPy (no autograd needed: ``_LogM`` supplies the derivative); on the small
    batches of an A2C update this is several times faster than the same loop in torch.
    """
    from scipy.special import log_ndtr

    a = alpha.detach().cpu().double().numpy().reshape(-1)
    log_m0 = log_ndtr(a)
    split = forward_threshold(k)
    # forward recursion on rho_j = M_j / M_{j-1}, where its error growth is bounded
    af = np.maximum(a, split)
    rho = af + np.exp(-0.5 * af**2 - LOG_SQRT_2PI - log_ndtr(af))  # rho_1 = alpha + phi / Phi
    rhos = np.empty((k, a.size))
    rhos[0] = rho
    for j in range(1, k):
        rho = af + j / rho  # rho_{j+1} = alpha + j / rho_j
        rhos[j] = rho
    # below the split: rho_j = j / (x + rho_{j+1}), x = -alpha > 0, run down from deep enough
    # for the element nearest the split (the others converge sooner)
    low = a < split
    if low.any():
        x = -a[low]
        r = np.zeros_like(x)
        for j in range(k + continued_fraction_depth(float(x.min()), k), 0, -1):
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
    """``log M_k(alpha)``, differentiable, accurate for any ``alpha`` (module docstring)."""
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


