"""Fixed-scale Gaussian policies as ``torch.distributions`` objects an A2C loss can use.

A policy head turns the actor's output ``loc`` into a distribution object with three methods:
``sample(generator=...)`` draws the action the agent *samples*, ``log_prob(action)`` is what the
policy-gradient loss differentiates, and ``env_action(action)`` is the transformation ``T``
applied before the environment sees the action (identity, clipping, a direction...).
The scale is fixed (not learned), as in Eisenach et al. (2019).

When the environment sees only ``T(a)``, two estimators of the policy gradient use the same
policy and the same actions: the *standard* one differentiates ``log pi(a)``, the *marginal*
one (Eisenach et al. 2019) the log-density of the law of ``T(a)`` at ``T(a)``: the angular
Gaussian for directions (APG, ``lib.rl.angular``), the clipped Gaussian for a box (CAPG,
``lib.rl.clipped``). ``DirectionalGaussianPolicy`` and ``ClippedGaussianPolicy`` take the
estimator as an argument, so that the two differ in nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch.distributions import Distribution, constraints

from .angular import angular_gaussian_log_prob, angular_gaussian_score_isotropic
from .clipped import _check_bounds, clipped_gaussian_log_prob, clipped_gaussian_score_loc

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)

Estimator = Literal["standard", "marginal"]
#: The two estimators a policy with a transformed action can feed to the policy gradient.
ESTIMATORS = ("standard", "marginal")


def _check_scale(scale: float) -> float:
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    return float(scale)


class DiagonalGaussianPolicy(Distribution):
    """``a ~ N(loc, scale^2 I)``; ``log_prob`` sums over the last axis; ``T`` is the identity."""

    arg_constraints = {"loc": constraints.real}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, loc: torch.Tensor, scale: float):
        self.loc, self.scale = loc, _check_scale(scale)
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    def sample(self, sample_shape: tuple[int, ...] = (),
               generator: torch.Generator | None = None) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        noise = torch.randn(shape, generator=generator, dtype=self.loc.dtype)
        return (self.loc + self.scale * noise.to(self.loc.device)).detach()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        z = (value - self.loc) / self.scale
        return (-0.5 * z**2 - math.log(self.scale) - LOG_SQRT_2PI).sum(-1)

    def score_loc(self, value: torch.Tensor) -> torch.Tensor:
        """``grad_loc log N(value; loc, scale^2 I) = (value - loc) / scale^2``."""
        return (value - self.loc) / self.scale**2

    def env_action(self, value: torch.Tensor) -> torch.Tensor:
        return value


class AngleGaussianPolicy(DiagonalGaussianPolicy):
    """A 1-D Gaussian on the angle: ``theta ~ N(loc, scale^2)``, ``T(theta) = (cos, sin)``.

    The baseline "1-D Gaussian on the angle" of the paper's Platform2D experiment: the actor
    outputs one number, the environment receives the unit vector at that angle.
    """

    def env_action(self, value: torch.Tensor) -> torch.Tensor:
        theta = value[..., 0]
        return torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)


@dataclass(frozen=True)
class GaussianHead:
    """Policy head ``loc -> DiagonalGaussianPolicy(loc, scale)``; ``loc_dim`` actor outputs."""

    scale: float
    loc_dim: int

    def __post_init__(self):
        _check_scale(self.scale)

    def __call__(self, loc: torch.Tensor) -> DiagonalGaussianPolicy:
        return DiagonalGaussianPolicy(loc, self.scale)


@dataclass(frozen=True)
class AngleHead:
    """Policy head for the 1-D angle policy (one actor output)."""

    scale: float
    loc_dim: int = 1

    def __post_init__(self):
        _check_scale(self.scale)

    def __call__(self, loc: torch.Tensor) -> AngleGaussianPolicy:
        return AngleGaussianPolicy(loc, self.scale)


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
        _check_scale(self.scale)

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
        _check_scale(self.scale)

    def __call__(self, loc: torch.Tensor) -> ClippedGaussianPolicy:
        return ClippedGaussianPolicy(loc, self.scale, self.low, self.high, self.estimator)

