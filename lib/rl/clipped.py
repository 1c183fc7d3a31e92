"""The clipped Gaussian: the law of ``clip(a, low, high)`` for ``a ~ N(mu, sigma^2)`` (CAPG).

The clipped action ``y`` has atoms at the bounds and a density inside (Fujita & Maeda 2018;
Eisenach et al. 2019, Cor. 4.8)::

    log p(y) = log Phi((low - mu) / sigma)       if y = low
             = log N(y; mu, sigma^2)              if low < y < high
             = log (1 - Phi((high - mu) / sigma)) if y = high

and its score in ``mu`` is an inverse Mills ratio at each bound, ``(y - mu) / sigma^2`` inside.
"""

from __future__ import annotations

import math

import torch

from .angular import LOG_SQRT_2PI, _check_positive


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


