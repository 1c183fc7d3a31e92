"""The marginal_pg chapter's cached runs: A2C on Platform2D (with its evaluations and the
gradient-variance probe) and on a classic-control task with clipped actions.

Every run goes through the artifact cache, keyed by the config fields it reads and by the
code of this module and what it imports (``config``, ``method``, ``lib.rl``, ``lib.core``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lib.core import ArtifactCache, derive_seed, limit_steps, make_generator, step_limit
from lib.rl import (
    A2CSettings,
    DirectionalHead,
    PlatformGeometry,
    evaluate_policy,
    make_platform_vector_env,
    platform_transition,
    tanh_mlp,
    train_a2c,
)

from .config import ALL_PLATFORM_METHODS, POSITIVE_CONTROL, MarginalPGConfig
from .method import (
    CONTROL_METHODS,
    PLATFORM_METHODS,
    centre_per_state,
    control_head,
    estimator_gradient_variance,
    platform_head,
)


def platform_geometry(cfg: MarginalPGConfig) -> PlatformGeometry:
    return PlatformGeometry(cfg.half_width, cfg.step_size, cfg.goal_radius)


def _env_kwargs(cfg: MarginalPGConfig) -> dict[str, Any]:
    return {"half_width": cfg.half_width, "step_size": cfg.step_size,
            "goal_radius": cfg.goal_radius, "max_episode_steps": cfg.max_episode_steps}


def a2c_settings(cfg: MarginalPGConfig, optimizer: str, lr: float, n_envs: int) -> A2CSettings:
    """The A2C knobs of one run; weights are kept at ``eval_points`` evenly spaced updates."""
    return A2CSettings(n_envs=n_envs, n_steps=cfg.n_steps, updates=cfg.updates,
                       gamma=cfg.gamma, lr=lr, hidden=cfg.hidden, value_coef=cfg.value_coef,
                       max_grad_norm=cfg.max_grad_norm, optimizer=optimizer,
                       clip_mode=cfg.clip_mode,
                       snapshot_every=max(1, cfg.updates // cfg.eval_points))


def method_batch(cfg: MarginalPGConfig, method: str) -> int:
    """Environment copies per update: ``n_envs``, or ``control_batch`` times it for the control."""
    if method == POSITIVE_CONTROL:
        return int(round(cfg.control_batch * cfg.n_envs))
    if method not in PLATFORM_METHODS:
        raise ValueError(f"unknown method {method!r}; valid ones are "
                         f"{', '.join(ALL_PLATFORM_METHODS)}")
    return cfg.n_envs


def probe_states(actor: torch.nn.Module, cfg: MarginalPGConfig,
                 gen: torch.Generator) -> torch.Tensor:
    """On-policy states: every state ``variance_states`` copies visit in ``variance_rollout``
    steps from the start (capped by a dry run's step limit), step-major
    (``index = step * copies + copy``), float64."""
    head = DirectionalHead(cfg.sigma, 2, "marginal")
    envs = make_platform_vector_env(cfg.variance_states, **_env_kwargs(cfg))
    obs, _ = envs.reset(seed=0)
    states = []
    for _ in range(limit_steps(cfg.variance_rollout)):  # a dry run rolls out fewer steps
        states.append(obs)
        with torch.no_grad():
            dist = head(actor(torch.as_tensor(obs, dtype=torch.float64)))
            obs, *_ = envs.step(dist.env_action(dist.sample(generator=gen)).numpy())
    return torch.as_tensor(np.concatenate(states), dtype=torch.float64)


def probe_advantages(actor: torch.nn.Module, critic: torch.nn.Module, states: torch.Tensor,
                     cfg: MarginalPGConfig, gen: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loc, actions, advantages)``: ``variance_actions`` actions per state, each scored with
    the critic's one-step advantage ``r + gamma (1 - terminal) V(s') - V(s)``."""
    k = cfg.variance_actions
    with torch.no_grad():
        loc = actor(states)
        a = loc[:, None] + cfg.sigma * torch.randn(len(states), k, 2, generator=gen,
                                                   dtype=states.dtype)
        s_rep = states[:, None].expand(-1, k, -1).reshape(-1, 2).numpy()
        nxt, reward, terminated = platform_transition(s_rep, a.reshape(-1, 2).numpy(),
                                                      platform_geometry(cfg))
        v_next = critic(torch.as_tensor(nxt))[:, 0] * torch.as_tensor(~terminated)
        adv = (torch.as_tensor(reward) + cfg.gamma * v_next).view(len(states), k) - critic(states)
    return loc, a, adv


def platform_gradient_variance(actor_state: dict[str, torch.Tensor],
                               critic_state: dict[str, torch.Tensor], cfg: MarginalPGConfig,
                               seed: int = 0) -> dict[str, Any]:
    """Per-state variance of both estimators' actor-parameter gradients at one point of training.

    States from ``probe_states``; at each, actions and the critic's advantages from
    ``probe_advantages`` (``"critic"``), and the same advantages centred per state
    (``"centred"``, ``method.centre_per_state``: free of the critic's offset). Keys
    ``critic``/``centred`` (actor parameters) and ``loc_critic``/``loc_centred`` (the policy
    mean) hold ``{"standard": [...], "marginal": [...]}``, one variance per state.
    """
    actor = tanh_mlp(2, 2, cfg.hidden).double()
    actor.load_state_dict(actor_state)
    critic = tanh_mlp(2, 1, cfg.hidden).double()
    critic.load_state_dict(critic_state)
    gen = make_generator(derive_seed(seed, "variance-probe"))
    states = probe_states(actor, cfg, gen)
    loc, actions, adv = probe_advantages(actor, critic, states, cfg, gen)
    out: dict[str, Any] = {"mean_abs_loc": float(loc.norm(dim=-1).mean())}
    for name, advantages in (("critic", adv), ("centred", centre_per_state(adv))):
        for prefix, net in (("", actor), ("loc_", None)):
            var = estimator_gradient_variance(net, states, actions, advantages, cfg.sigma,
                                              loc=loc)
            out[prefix + name] = {key: v.tolist() for key, v in var.items()}
    return out


def _as_list(x: np.ndarray) -> list[float]:
    return [float(v) for v in x]


def train_platform(cfg: MarginalPGConfig, method: str, seed: int, optimizer: str, lr: float,
                   *, probe: bool = True, show_progress: bool | None = None) -> dict[str, Any]:
    """A2C on Platform2D with one method, seed, optimizer and learning rate (no cache).

    Returns the training episodes, the evaluation returns of the policy at ``eval_points``
    evenly spaced updates and at the end (``eval_episodes`` episodes each, common random
    numbers across methods), and, with ``probe``, the gradient-variance probes there.
    """
    n_envs = method_batch(cfg, method)
    head = platform_head("Gaussian" if method == POSITIVE_CONTROL else method, cfg.sigma,
                         cfg.angle_sigma)
    envs = make_platform_vector_env(n_envs, **_env_kwargs(cfg))
    settings = a2c_settings(cfg, optimizer, lr, n_envs)
    result = train_a2c(envs, head, settings, seed, show_progress=show_progress,
                       desc=f"Platform2D {method} {optimizer} seed {seed}")
    final = {"update": result.updates, "env_steps": result.updates * n_envs * cfg.n_steps,
             "actor": result.actor.state_dict(), "critic": result.critic.state_dict()}
    points = []
    for i, snap in enumerate([*result.snapshots, final]):
        actor = tanh_mlp(2, head.loc_dim, cfg.hidden)
        actor.load_state_dict(snap["actor"])
        eval_envs = make_platform_vector_env(cfg.eval_episodes, **_env_kwargs(cfg))
        returns = evaluate_policy(eval_envs, actor, head, derive_seed(seed, "evaluation", i),
                                  max_steps=step_limit())
        point = {"update": snap["update"], "env_steps": snap["env_steps"],
                 "returns": _as_list(returns)}
        if probe and method in ("APG", "Gaussian"):
            point["probe"] = platform_gradient_variance(
                {k: v.double() for k, v in snap["actor"].items()},
                {k: v.double() for k, v in snap["critic"].items()}, cfg,
                derive_seed(seed, snap["update"]))
        points.append(point)
    ep = result.episodes
    return {"method": method, "seed": seed, "optimizer": optimizer, "lr": lr,
            "copies": cfg.variance_states, "episode_env_steps": [int(e["env_steps"]) for e in ep],
            "episode_returns": [float(e["return"]) for e in ep], "points": points,
            "train_seconds": result.wall_time_s,
            "total_env_steps": result.updates * n_envs * cfg.n_steps}


_PLATFORM_FIELDS = ("half_width", "step_size", "goal_radius", "max_episode_steps", "sigma",
                    "angle_sigma", "n_envs", "n_steps", "updates", "gamma", "hidden",
                    "value_coef", "max_grad_norm", "clip_mode", "control_batch", "eval_points",
                    "eval_episodes", "variance_states", "variance_rollout", "variance_actions")


def _platform_key(cfg: MarginalPGConfig, method: str, seed: int, optimizer: str, lr: float,
                  probe: bool) -> dict[str, Any]:
    return {"config": {f: getattr(cfg, f) for f in _PLATFORM_FIELDS}, "method": method,
            "seed": seed, "optimizer": optimizer, "lr": lr, "probe": probe}


def platform_run(cfg: MarginalPGConfig, method: str, seed: int, optimizer: str, lr: float, *,
                 probe: bool = True, cache: ArtifactCache | None = None,
                 show_progress: bool | None = None) -> dict[str, Any]:
    """``train_platform`` through the artifact cache (trained once, then loaded)."""
    cache = cache or ArtifactCache()
    return cache.get_or_create(
        "marginal_pg-platform", _platform_key(cfg, method, seed, optimizer, lr, probe),
        lambda: train_platform(cfg, method, seed, optimizer, lr, probe=probe,
                               show_progress=show_progress))


def _control_envs(cfg: MarginalPGConfig, n: int):
    import gymnasium as gym

    scale = cfg.control_reward_scale
    return gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.TransformReward(gym.make(cfg.control_env), lambda r: scale * r)
         for _ in range(n)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def train_control(cfg: MarginalPGConfig, method: str, seed: int = 0, *,
                  show_progress: bool | None = None) -> dict[str, Any]:
    """A2C with CAPG or the standard estimator on ``cfg.control_env`` (actions clipped);
    the final policy is evaluated on ``eval_episodes`` episodes (common random numbers)."""
    if method not in CONTROL_METHODS:
        raise ValueError(f"unknown method {method!r}; valid ones are {', '.join(CONTROL_METHODS)}")
    envs = _control_envs(cfg, cfg.control_n_envs)
    space = envs.single_action_space
    head = control_head(method, cfg.control_sigma, float(space.low[0]), float(space.high[0]),
                        int(space.shape[0]))
    settings = A2CSettings(n_envs=cfg.control_n_envs, n_steps=cfg.n_steps,
                           updates=cfg.control_updates, gamma=cfg.control_gamma,
                           lr=cfg.control_lr, hidden=cfg.hidden, value_coef=cfg.value_coef,
                           max_grad_norm=cfg.max_grad_norm, optimizer=cfg.control_optimizer,
                           clip_mode=cfg.clip_mode)
    result = train_a2c(envs, head, settings, seed, show_progress=show_progress,
                       desc=f"{cfg.control_env} {method} seed {seed}")
    envs.close()
    eval_envs = _control_envs(cfg, cfg.eval_episodes)
    returns = evaluate_policy(eval_envs, result.actor, head, derive_seed(seed, "evaluation"),
                              max_steps=step_limit())
    eval_envs.close()
    ep = result.episodes
    scale = cfg.control_reward_scale
    return {"method": method, "seed": seed,
            "episode_env_steps": [int(e["env_steps"]) for e in ep],
            "episode_returns": [float(e["return"]) / scale for e in ep],
            "final_returns": _as_list(returns / scale), "train_seconds": result.wall_time_s,
            "total_env_steps": result.updates * cfg.control_n_envs * cfg.n_steps}


def control_run(cfg: MarginalPGConfig, method: str, seed: int = 0,
                cache: ArtifactCache | None = None,
                show_progress: bool | None = None) -> dict[str, Any]:
    """``train_control`` through the artifact cache."""
    fields = ("control_env", "control_sigma", "control_updates", "control_n_envs",
              "control_reward_scale", "control_gamma", "control_optimizer", "control_lr",
              "n_steps", "hidden", "value_coef", "max_grad_norm", "clip_mode", "eval_episodes")
    key = {"config": {f: getattr(cfg, f) for f in fields}, "method": method, "seed": seed}
    return (cache or ArtifactCache()).get_or_create(
        "marginal_pg-control", key,
        lambda: train_control(cfg, method, seed, show_progress=show_progress))
