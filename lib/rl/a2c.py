"""Synchronous advantage actor-critic (A2C, Mnih et al. 2016) on gymnasium's vector API.

Each update collects ``n_steps`` transitions from ``n_envs`` environment copies, forms the
n-step bootstrapped returns

    R_t = r_t + gamma * R_{t+1}                  (episode continues)
    R_t = r_t                                     (terminated: no future)
    R_t = r_t + gamma * V(final observation)      (truncated by a time limit)
    R_{n_steps} = V(s_{n_steps})                   (bootstrap at the end of the rollout)

and takes one optimizer step on

    loss = - mean_t[(R_t - V(s_t)) * log pi(a_t | s_t)] + value_coef * mean_t[(R_t - V(s_t))^2]

with the advantage ``R_t - V(s_t)`` held constant in the actor term. ``log pi`` is whatever the
policy head's distribution calls ``log_prob``: this is where the standard and the marginal
policy gradient estimators differ. Actor and critic are separate tanh MLPs, trained by one
optimizer (plain SGD, as in the authors' public code, or Adam), with optional gradient-norm
clipping over both networks together or each on its own (``A2CSettings``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ..core.limits import limit_steps
from ..core.progress import progress
from ..core.seeding import derive_seed, make_generator, seed_everything


class PolicyHead(Protocol):
    """``loc -> distribution`` with ``sample``, ``log_prob`` and ``env_action``."""

    loc_dim: int

    def __call__(self, loc: torch.Tensor) -> Any: ...


def tanh_mlp(in_dim: int, out_dim: int, hidden: tuple[int, ...] = (32, 32)) -> nn.Sequential:
    """An MLP with tanh hidden layers, Xavier-uniform weights, zero biases, linear output."""
    if not hidden or any(h <= 0 for h in hidden):
        raise ValueError(f"hidden must be a non-empty tuple of positive widths, got {hidden!r}")
    layers: list[nn.Module] = []
    widths = (in_dim, *hidden)
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.Tanh()]
    layers.append(nn.Linear(widths[-1], out_dim))
    for m in layers:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return nn.Sequential(*layers)


#: Optimizers A2C can use: plain SGD (as in the authors' public code) or Adam.
OPTIMIZERS = ("sgd", "adam")
#: Gradient-norm clipping: one norm over actor and critic together, or one per network.
CLIP_MODES = ("joint", "separate")


@dataclass(frozen=True)
class A2CSettings:
    """Knobs of A2C (the paper's own: tanh MLPs, fixed sigma, n-step returns).

    ``optimizer`` is ``"sgd"`` (plain, as in the authors' public code) or ``"adam"``;
    ``max_grad_norm > 0`` clips the gradient norm, over both networks together
    (``clip_mode="joint"``) or each network on its own (``"separate"``); 0 does not clip.
    """

    n_envs: int = 16
    n_steps: int = 5
    updates: int = 1000
    gamma: float = 0.99
    lr: float = 1e-3
    hidden: tuple[int, ...] = (32, 32)
    value_coef: float = 0.5
    max_grad_norm: float = 0.0
    optimizer: str = "adam"
    clip_mode: str = "joint"
    snapshot_every: int = 0  # keep actor/critic weights every this many updates (0: never)

    def __post_init__(self):
        for name in ("n_envs", "n_steps", "updates"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"A2CSettings.{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {self.gamma}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not self.max_grad_norm >= 0:
            raise ValueError(f"max_grad_norm must be >= 0 (0: no clipping), got "
                             f"{self.max_grad_norm}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid ones are "
                             f"{', '.join(OPTIMIZERS)}")
        if self.clip_mode not in CLIP_MODES:
            raise ValueError(f"unknown clip_mode {self.clip_mode!r}; valid ones are "
                             f"{', '.join(CLIP_MODES)}")


def make_optimizer(actor: nn.Module, critic: nn.Module,
                   settings: A2CSettings) -> torch.optim.Optimizer:
    """The optimizer of both networks (the critic is trained too: the authors' public code
    hands only the actor's parameters to SGD, which leaves its critic at initialisation)."""
    groups = [{"params": list(actor.parameters())}, {"params": list(critic.parameters())}]
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=settings.lr)
    return torch.optim.Adam(groups, lr=settings.lr)


def nstep_returns(rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
                  final_values: torch.Tensor, last_values: torch.Tensor,
                  gamma: float) -> torch.Tensor:
    """n-step bootstrapped returns of a ``(T, N)`` rollout (see the module docstring).

    ``final_values[t, i]`` is ``V`` of the observation a truncated episode ended in (ignored
    elsewhere); ``last_values[i]`` bootstraps the step after the rollout.
    """
    if rewards.shape != terminated.shape or rewards.shape != truncated.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)}, terminated "
                         f"{tuple(terminated.shape)} and truncated {tuple(truncated.shape)} "
                         "must share one (T, N) shape")
    returns = torch.empty_like(rewards)
    future = last_values
    for t in range(rewards.shape[0] - 1, -1, -1):
        done_value = torch.where(terminated[t], torch.zeros_like(future), final_values[t])
        future = rewards[t] + gamma * torch.where(terminated[t] | truncated[t], done_value, future)
        returns[t] = future
    return returns


@dataclass
class Rollout:
    """One update's batch, flattened over time and copies: observations, sampled actions
    (before ``T``) and their n-step returns."""

    obs: torch.Tensor
    actions: torch.Tensor
    returns: torch.Tensor


def _clip(actor: nn.Module, critic: nn.Module, settings: A2CSettings) -> None:
    if settings.max_grad_norm <= 0:
        return
    if settings.clip_mode == "joint":
        nn.utils.clip_grad_norm_([*actor.parameters(), *critic.parameters()],
                                 settings.max_grad_norm)
    else:
        nn.utils.clip_grad_norm_(actor.parameters(), settings.max_grad_norm)
        nn.utils.clip_grad_norm_(critic.parameters(), settings.max_grad_norm)


def a2c_update(actor: nn.Module, critic: nn.Module, head: PolicyHead,
               optimizer: torch.optim.Optimizer, batch: Rollout,
               settings: A2CSettings) -> dict[str, float]:
    """One A2C step on ``batch`` (module docstring): the actor follows
    ``adv * grad log pi`` with ``log pi`` the head's ``log_prob`` (standard or marginal), the
    critic regresses on the returns."""
    v = critic(batch.obs)[:, 0]
    advantage = batch.returns - v
    log_prob = head(actor(batch.obs)).log_prob(batch.actions)
    actor_loss = -(advantage.detach() * log_prob).mean()
    critic_loss = advantage.pow(2).mean()
    optimizer.zero_grad()
    (actor_loss + settings.value_coef * critic_loss).backward()
    _clip(actor, critic, settings)
    optimizer.step()
    return {"actor": actor_loss.item(), "critic": critic_loss.item()}


@dataclass
class A2CResult:
    """What a run leaves: episodes, weight snapshots and the trained networks."""

    episodes: list[dict[str, float]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    losses: list[dict[str, float]] = field(default_factory=list)
    actor: nn.Module | None = None
    critic: nn.Module | None = None
    updates: int = 0
    wall_time_s: float = 0.0


def _check_vector_env(envs: gym.vector.VectorEnv) -> None:
    if envs.metadata.get("autoreset_mode") != gym.vector.AutoresetMode.SAME_STEP:
        raise ValueError("A2C needs a vector env with autoreset_mode=SAME_STEP, got "
                         f"{envs.metadata.get('autoreset_mode')}")


def train_a2c(envs: gym.vector.VectorEnv, head: PolicyHead, settings: A2CSettings, seed: int = 0,
              *, show_progress: bool | None = None, desc: str = "A2C") -> A2CResult:
    """Train actor and critic with A2C on ``envs`` (same-step autoreset); see the module doc.

    The number of updates is capped by a dry run's step limit (``lib.core.limit_steps``).
    """
    _check_vector_env(envs)
    if envs.num_envs != settings.n_envs:
        raise ValueError(f"envs has {envs.num_envs} copies but settings.n_envs={settings.n_envs}")
    start = time.perf_counter()
    seed_everything(seed)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    actor = tanh_mlp(obs_dim, head.loc_dim, settings.hidden)
    critic = tanh_mlp(obs_dim, 1, settings.hidden)
    optimizer = make_optimizer(actor, critic, settings)
    gen = make_generator(derive_seed(seed, "actions"))
    obs, _ = envs.reset(seed=derive_seed(seed, "env") % 2**31)
    n, steps = settings.n_envs, settings.n_steps
    ep_return, ep_length = np.zeros(n), np.zeros(n, dtype=np.int64)
    result, env_steps = A2CResult(), 0

    def value(x: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        return critic(x.reshape(-1, obs_dim))[:, 0]

    updates = limit_steps(settings.updates)
    for update in progress(range(updates), desc=desc, enabled=show_progress):
        if settings.snapshot_every and update % settings.snapshot_every == 0:
            result.snapshots.append({
                "update": update, "env_steps": env_steps,
                "actor": {k: v.clone() for k, v in actor.state_dict().items()},
                "critic": {k: v.clone() for k, v in critic.state_dict().items()}})
        o_buf, a_buf = [], []
        r_buf = torch.zeros(steps, n)
        term_buf = torch.zeros(steps, n, dtype=torch.bool)
        trunc_buf = torch.zeros(steps, n, dtype=torch.bool)
        final_v = torch.zeros(steps, n)
        for t in range(steps):
            o = torch.as_tensor(obs, dtype=torch.float32).reshape(n, obs_dim)
            with torch.no_grad():
                dist = head(actor(o))
                action = dist.sample(generator=gen)
                env_action = dist.env_action(action)
            obs, reward, terminated, truncated, info = envs.step(env_action.numpy())
            o_buf.append(o)
            a_buf.append(action)
            r_buf[t] = torch.as_tensor(reward, dtype=torch.float32)
            term_buf[t] = torch.as_tensor(terminated)
            trunc_buf[t] = torch.as_tensor(truncated)
            ep_return += reward
            ep_length += 1
            env_steps += n
            done = np.asarray(terminated) | np.asarray(truncated)
            if done.any():
                cut = np.flatnonzero(np.asarray(truncated))
                if len(cut):
                    with torch.no_grad():
                        final_v[t, cut] = value(np.stack([info["final_obs"][i] for i in cut]))
                for i in np.flatnonzero(done):
                    result.episodes.append({"update": update, "env_steps": env_steps,
                                            "return": float(ep_return[i]),
                                            "length": int(ep_length[i]),
                                            "terminated": bool(terminated[i])})
                ep_return[done], ep_length[done] = 0.0, 0
        with torch.no_grad():
            last_v = value(obs)
        returns = nstep_returns(r_buf, term_buf, trunc_buf, final_v, last_v, settings.gamma)
        batch = Rollout(torch.cat(o_buf), torch.cat(a_buf), returns.reshape(-1))
        result.losses.append(a2c_update(actor, critic, head, optimizer, batch, settings))
    result.actor, result.critic, result.updates = actor, critic, updates
    result.wall_time_s = time.perf_counter() - start
    return result


def evaluate_policy(envs: gym.vector.VectorEnv, actor: nn.Module, head: PolicyHead,
                    seed: int = 0, max_steps: int | None = None) -> np.ndarray:
    """The return of one episode in each copy of ``envs`` under the stochastic policy.

    Each step draws the actions of all copies from one generator seeded by ``seed`` (copies
    whose episode has ended keep drawing, their actions unused), so two policies of the same
    family evaluated with the same seed see the same noise in every copy and step (common
    random numbers): that pairs their episodes. Each copy runs until its first episode ends,
    or for at most ``max_steps`` steps (a dry run passes its step limit).
    """
    _check_vector_env(envs)
    n = envs.num_envs
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    gen = make_generator(derive_seed(seed, "evaluation"))
    obs, _ = envs.reset(seed=derive_seed(seed, "evaluation-env") % 2**31)
    returns, running, steps = np.zeros(n), np.ones(n, dtype=bool), 0
    while running.any() and (max_steps is None or steps < max_steps):
        steps += 1
        with torch.no_grad():
            dist = head(actor(torch.as_tensor(obs, dtype=torch.float32).reshape(n, obs_dim)))
            env_action = dist.env_action(dist.sample(generator=gen))
        obs, reward, terminated, truncated, _ = envs.step(env_action.numpy())
        returns[running] += np.asarray(reward)[running]
        running &= ~(np.asarray(terminated) | np.asarray(truncated))
    return returns
