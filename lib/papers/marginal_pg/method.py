"""Marginal policy gradients (Eisenach, Yang, Liu & Liu, ICLR 2019; arXiv 1806.05134).

**Problem.** A policy samples ``a ~ pi(. | s)`` over R^d but the environment only sees
``T(a)``: a clipped action ``clip(a, low, high)`` or a direction ``a / |a|``. The standard
estimator differentiates ``log pi(a | s)`` and so carries noise from the part of ``a`` that
``T`` throws away. The *marginal policy gradient* (MPG) differentiates the log-density of the
law of ``T(a)`` instead::

    g_standard = q(T(a)) * grad log pi(a | s)
    g_marginal = q(T(a)) * grad log (T_* pi)(T(a) | s) = E[g_standard | T(a)]

It is unbiased and, by the law of total variance (Thm 4.6), its variance is smaller by
exactly ``E[Var(g_standard | T(a))]`` (Cor. 4.7 for directions, 4.8 for clipping). The
densities live in ``lib.rl``: the angular Gaussian (``lib.rl.angular``, APG) and the clipped
Gaussian (``lib.rl.clipped``, CAPG).

**Algorithm (A2C with a marginal policy gradient, as in the paper's experiments).** For
each update, in every environment copy:

1. sample ``a_t ~ N(mu_theta(s_t), sigma^2 I)``; the environment executes ``T(a_t)``;
2. n-step returns ``R_t`` bootstrapped by the critic; advantages ``A_t = R_t - V(s_t)``;
3. actor step along ``mean_t A_t grad_theta log f(T(a_t) | s_t)`` (APG: ``f`` the angular
   Gaussian; CAPG: the clipped Gaussian); the baseline "Gaussian" uses
   ``grad_theta log pi(a_t | s_t)`` on the same policy and the same actions;
4. critic step on ``mean_t (R_t - V(s_t))^2``.

``lib.rl.a2c`` runs these steps; this module names the methods the paper compares and
holds the estimators and the measurement of their variance.
"""

from __future__ import annotations

from typing import Any

import torch

from lib.rl import AngleHead, ClippedHead, DirectionalHead, PolicyHead
from lib.rl.angular import angular_gaussian_score_isotropic
from lib.rl.clipped import clipped_gaussian_score_loc

#: The policies of the Platform2D experiment (names as in the chapter's legend).
PLATFORM_METHODS = ("APG", "Gaussian", "angle")
#: The policies of the clipped-action experiment.
CONTROL_METHODS = ("CAPG", "clipped Gaussian")


def platform_head(method: str, sigma: float, angle_sigma: float) -> PolicyHead:
    """The policy head of a Platform2D method: APG and Gaussian share one policy,
    ``a ~ N(mu(s), sigma^2 I)``, and differ only in the density the loss differentiates."""
    if method == "APG":
        return DirectionalHead(sigma, 2, "marginal")  # step 3: log f(a / |a|), angular Gaussian
    if method == "Gaussian":
        return DirectionalHead(sigma, 2, "standard")  # step 3: log N(a; mu, sigma^2 I)
    if method == "angle":
        return AngleHead(angle_sigma)  # a 1-D Gaussian on the angle
    raise ValueError(f"unknown method {method!r}; valid ones are {', '.join(PLATFORM_METHODS)}")


def control_head(method: str, sigma: float, low: float, high: float, dim: int) -> PolicyHead:
    """The policy head of a clipped-action method: CAPG or the standard estimator."""
    if method not in CONTROL_METHODS:
        raise ValueError(f"unknown method {method!r}; valid ones are {', '.join(CONTROL_METHODS)}")
    return ClippedHead(sigma, low, high, dim, "marginal" if method == "CAPG" else "standard")


def directional_estimators(actions: torch.Tensor, loc: torch.Tensor, sigma: float,
                           q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(g_standard, g_marginal)`` of ``grad_mu E[q(a / |a|)]``, ``a ~ N(mu, s^2 I)``.

    ``actions``: ``(n, d)``, ``q``: ``(n,)`` rewards (already minus a baseline, if any).
    """
    x = actions / actions.norm(dim=-1, keepdim=True)
    q = q[..., None]
    standard = q * (actions - loc) / sigma**2  # q grad log N(a; mu, sigma^2 I)
    marginal = q * angular_gaussian_score_isotropic(x, loc.expand_as(x), sigma)  # q grad log f(x)
    return standard, marginal


def clipped_estimators(actions: torch.Tensor, loc: float | torch.Tensor, sigma: float,
                       low: float, high: float, q: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(g_standard, g_marginal)`` of ``d/dmu E[q(clip(a))]``, ``a ~ N(mu, s^2)``."""
    mu = torch.as_tensor(loc, dtype=actions.dtype)
    y = actions.clamp(low, high)
    standard = q * (actions - mu) / sigma**2
    marginal = q * clipped_gaussian_score_loc(y, mu, sigma, low, high)  # CAPG
    return standard, marginal


def centre_per_state(advantages: torch.Tensor) -> torch.Tensor:
    """``A(s, a) - mean_a A(s, a)`` over the actions drawn at each state (rows): the
    advantages of a baseline equal to the state's value under the current policy, estimated
    from those actions, whatever offset the critic has."""
    return advantages - advantages.mean(-1, keepdim=True)


def estimator_gradient_variance(actor: torch.nn.Module | None, states: torch.Tensor,
                                actions: torch.Tensor, advantages: torch.Tensor, sigma: float,
                                loc: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per state, the variance over actions of ``adv * grad log pi(a | s)``, both estimators.

    ``actions``: ``(states, k, d)`` raw Gaussian actions, ``advantages``: ``(states, k)``.
    Returns ``{"standard": (states,), "marginal": (states,)}``: total variances (trace of the
    covariance) of the gradient w.r.t. the actor's parameters; with ``J(s) = d loc / d theta``
    that is ``tr(J J' Cov_a[adv * score_loc])``. With ``actor=None`` (and ``loc`` given)
    ``J = I``: the variance of the gradient w.r.t. the policy mean itself.
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

        def loc_of(p: dict[str, Any], state: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(actor, p, (state[None],))[0]

        jac = torch.func.vmap(torch.func.jacrev(loc_of), in_dims=(None, 0))(params, states)
        flat = torch.cat([j.reshape(len(states), d, -1) for j in jac.values()], dim=-1)
        gram = flat @ flat.transpose(1, 2)  # J J', (states, d, d)
    k = actions.shape[1]

    def variance(g: torch.Tensor) -> torch.Tensor:
        centred = g - g.mean(1, keepdim=True)
        cov = centred.transpose(1, 2) @ centred / (k - 1)
        return (gram * cov).sum((1, 2))

    return {"standard": variance(g_std), "marginal": variance(g_mpg)}
