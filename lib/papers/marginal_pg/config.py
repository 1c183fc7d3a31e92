"""The marginal_pg chapter's configuration: one frozen dataclass, three scales.

Kept apart from the experiment's tables so that editing a table does not change the code
version of the cached A2C runs (``training.py`` imports this module, not ``experiment.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.core import ScaleConfigs

from .method import PLATFORM_METHODS

CHAPTER = "marginal_pg"
#: The positive control: the standard estimator on ``control_batch`` times the samples.
POSITIVE_CONTROL = "Gaussian, 1.5x batch"
ALL_PLATFORM_METHODS = (*PLATFORM_METHODS, POSITIVE_CONTROL)
#: Seeds of the learning-rate tuning runs start here (disjoint from the evaluation seeds).
DEV_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class MarginalPGConfig:
    """Knobs of the chapter (bandits, Platform2D, classic control)."""

    # one-step bandits: Monte Carlo seeds x samples, resampled in groups ("items")
    bandit_seeds: int
    bandit_samples: int
    bandit_items: int
    bandit_dims: tuple[int, ...]
    bandit_sigmas: tuple[float, ...]  # sigma / |mu|
    goal_angles: tuple[float, ...]  # degrees between the goal and the policy mean
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
    dev_seeds: int
    n_envs: int
    n_steps: int
    updates: int
    gamma: float
    hidden: tuple[int, ...]
    value_coef: float
    optimizers: tuple[str, ...]  # "sgd" (the public code's) and/or "adam"
    lr_grid_sgd: tuple[float, ...]
    lr_grid_adam: tuple[float, ...]
    max_grad_norm: float  # 0: no clipping (the public code clips nothing)
    clip_mode: str  # "joint" or "separate" (when max_grad_norm > 0)
    control_batch: float  # the positive control's batch, in multiples of n_envs
    # evaluation and the gradient-variance probe along training
    eval_points: int
    eval_episodes: int
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
    control_optimizer: str
    control_lr: float


_COMMON = dict(bandit_dims=(2, 3, 5), goal_angles=(0.0, 60.0, 90.0), clip_sigma=1.0,
               half_width=1.5, gamma=0.99, value_coef=0.5, optimizers=("sgd", "adam"),
               lr_grid_sgd=(0.01, 0.03, 0.1, 0.3), lr_grid_adam=(1e-4, 3e-4, 1e-3, 3e-3),
               max_grad_norm=0.0, clip_mode="joint", control_batch=1.5,
               control_env="Pendulum-v1", control_sigma=0.5, control_reward_scale=0.1,
               control_gamma=0.9, control_optimizer="adam", control_lr=1e-3)

CONFIGS = ScaleConfigs(
    smoke=MarginalPGConfig(
        bandit_seeds=3, bandit_samples=2_000, bandit_items=20, bandit_sigmas=(0.05, 1.0),
        clip_locs=(-1.0, 0.0), step_size=0.1, goal_radius=0.1, max_episode_steps=100,
        sigma=0.3, angle_sigma=0.3, seeds=2, dev_seeds=1, n_envs=8, n_steps=5, updates=20,
        hidden=(16, 16), eval_points=2, eval_episodes=4, variance_states=4,
        variance_rollout=4, variance_actions=16, curve_bins=6, control_updates=0,
        control_seeds=0, control_n_envs=4, **{**_COMMON, "bandit_dims": (2, 3),
                                               "lr_grid_sgd": (0.1,), "lr_grid_adam": (1e-3,)}),
    tutorial=MarginalPGConfig(
        bandit_seeds=5, bandit_samples=20_000, bandit_items=100,
        bandit_sigmas=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
        clip_locs=(-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0),
        step_size=0.1, goal_radius=0.1, max_episode_steps=1000, sigma=0.3, angle_sigma=0.3,
        seeds=5, dev_seeds=3, n_envs=16, n_steps=5, updates=600, hidden=(32, 32),
        eval_points=6, eval_episodes=32, variance_states=16, variance_rollout=16,
        variance_actions=64, curve_bins=16, control_updates=0, control_seeds=0,
        control_n_envs=8, **_COMMON),
    full=MarginalPGConfig(
        bandit_seeds=10, bandit_samples=200_000, bandit_items=200,
        bandit_sigmas=(0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
        clip_locs=tuple(np.round(np.linspace(-2.5, 2.5, 21), 2).tolist()),
        step_size=0.01, goal_radius=0.01, max_episode_steps=10_000, sigma=0.3,
        angle_sigma=0.3, seeds=10, dev_seeds=3, n_envs=32, n_steps=10, updates=5_000,
        hidden=(32, 32), eval_points=20, eval_episodes=64, variance_states=32,
        variance_rollout=64, variance_actions=256, curve_bins=40, control_updates=8_000,
        control_seeds=5, control_n_envs=16, **_COMMON),
)


def lr_grid(cfg: MarginalPGConfig, optimizer: str) -> tuple[float, ...]:
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {optimizer!r}; valid ones are sgd, adam")
    return cfg.lr_grid_sgd if optimizer == "sgd" else cfg.lr_grid_adam
