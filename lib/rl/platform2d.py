"""Platform2D: steer a point from (-1, -1) to the goal (1, 1) on a square platform by directions.

The navigation task of Eisenach et al. (2019, Sec. 6), as a gymnasium environment. The state is
the agent's position ``s`` on the platform ``[-h, h]^2`` (``h = 1.5``); the action is a
*direction*: any nonzero ``a`` in R^2, of which the environment uses only ``T(a) = a / |a|``
(this is what makes the marginal policy gradient applicable). A step moves the agent a fixed
distance ``step_size`` along ``T(a)``::

    s_{t+1} = s_t + step_size * a_t / |a_t|
    r_t     = phi(s_t) - phi(s_{t+1}),   phi(s) = |s - goal|

so the undiscounted return telescopes to ``phi(s_0) - phi(s_T)``: the distance covered towards
the goal. The maximum return is ``|start - goal| = 2 sqrt(2)`` minus the goal radius. An
episode terminates when the agent is within ``goal_radius`` of the goal or leaves the
platform (no penalty besides losing the rest of the return), and is truncated after
``max_episode_steps``.

The step size, goal radius and time limit are knobs: the paper does not print them. The
authors' public environment moves 0.005 per step with a goal radius of 0.01 and no time limit
(platform corners at +-2 there, +-1.5 in the paper's text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

START = np.array([-1.0, -1.0])
GOAL = np.array([1.0, 1.0])


@dataclass(frozen=True)
class PlatformGeometry:
    """Where the platform ends, how far a step goes, when the goal counts as reached."""

    half_width: float = 1.5
    step_size: float = 0.05
    goal_radius: float = 0.05

    def __post_init__(self):
        for name in ("half_width", "step_size", "goal_radius"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"PlatformGeometry.{name} must be a positive number, "
                                 f"got {value!r}")
        if self.half_width <= 1.0:
            raise ValueError(f"half_width must exceed 1 so that start and goal lie on the "
                             f"platform, got {self.half_width}")

    @property
    def max_return(self) -> float:
        """The best undiscounted return: from ``phi(start)`` down to the goal radius."""
        return float(np.linalg.norm(START - GOAL) - self.goal_radius)


def potential(position: np.ndarray) -> np.ndarray:
    """``phi(s) = |s - goal|`` (last axis is the coordinate)."""
    return np.linalg.norm(np.asarray(position, dtype=np.float64) - GOAL, axis=-1)


def platform_transition(position: np.ndarray, action: np.ndarray, geometry: PlatformGeometry
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step for a batch: ``(next_position, reward, terminated)``.

    Only the direction of ``action`` matters; a zero action leaves the agent in place.
    """
    position = np.asarray(position, dtype=np.float64)
    action = np.asarray(action, dtype=np.float64)
    norm = np.linalg.norm(action, axis=-1, keepdims=True)
    direction = np.divide(action, norm, out=np.zeros_like(action), where=norm > 0)
    nxt = position + geometry.step_size * direction  # s_{t+1} = s_t + step * a / |a|
    reward = potential(position) - potential(nxt)  # r_t = phi(s_t) - phi(s_{t+1})
    off_platform = np.any(np.abs(nxt) > geometry.half_width, axis=-1)
    at_goal = potential(nxt) < geometry.goal_radius
    return nxt, reward, off_platform | at_goal


class Platform2D(gym.Env):
    """The Platform2D navigation task (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, half_width: float = 1.5, step_size: float = 0.05,
                 goal_radius: float = 0.05, max_episode_steps: int = 200):
        self.geometry = PlatformGeometry(half_width, step_size, goal_radius)
        if not (isinstance(max_episode_steps, int) and max_episode_steps > 0):
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}")
        self.max_episode_steps = max_episode_steps
        # A step can overshoot the edge by at most one step before the episode ends.
        bound = np.float32(half_width + step_size)
        self.observation_space = spaces.Box(-bound, bound, shape=(2,), dtype=np.float32)
        # Any nonzero vector is a valid direction; [-1, 1]^2 is the declared (normalised) box.
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._position = START.copy()
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._position = START.copy()
        self._t = 0
        return self._position.astype(np.float32), {}

    def step(self, action):
        nxt, reward, terminated = platform_transition(
            self._position[None], np.asarray(action)[None], self.geometry)
        self._position = nxt[0]
        self._t += 1
        truncated = bool(self._t >= self.max_episode_steps and not terminated[0])
        return (self._position.astype(np.float32), float(reward[0]), bool(terminated[0]),
                truncated, {})


ENV_ID = "Platform2D-v1"
if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=Platform2D)


class Platform2DVectorEnv(gym.vector.VectorEnv):
    """``n_envs`` Platform2D copies stepped together in NumPy (gymnasium's vector API).

    Same results as ``SyncVectorEnv`` over ``Platform2D`` with same-step autoreset (the test
    suite checks this), without a Python loop over copies: a finished copy is reset in the
    step that finished it and its last observation is in ``infos["final_obs"]``.
    """

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, n_envs: int, half_width: float = 1.5, step_size: float = 0.05,
                 goal_radius: float = 0.05, max_episode_steps: int = 200):
        if not (isinstance(n_envs, int) and n_envs > 0):
            raise ValueError(f"n_envs must be a positive int, got {n_envs!r}")
        single = Platform2D(half_width, step_size, goal_radius, max_episode_steps)
        self.geometry, self.max_episode_steps = single.geometry, max_episode_steps
        self.num_envs = n_envs
        self.single_observation_space = single.observation_space
        self.single_action_space = single.action_space
        self.observation_space = gym.vector.utils.batch_space(single.observation_space, n_envs)
        self.action_space = gym.vector.utils.batch_space(single.action_space, n_envs)
        self._position = np.tile(START, (n_envs, 1))
        self._t = np.zeros(n_envs, dtype=np.int64)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        self._position = np.tile(START, (self.num_envs, 1))
        self._t[:] = 0
        return self._position.astype(np.float32), {}

    def step(self, actions):
        nxt, reward, terminated = platform_transition(self._position, actions, self.geometry)
        self._t += 1
        truncated = (self._t >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        infos: dict[str, Any] = {}
        if done.any():
            final = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(done):
                final[i] = nxt[i].astype(np.float32)
            infos = {"final_obs": final, "_final_obs": done.copy()}
            nxt[done] = START
            self._t[done] = 0
        self._position = nxt
        return (nxt.astype(np.float32), reward.astype(np.float64), terminated, truncated, infos)


def make_platform_vector_env(n_envs: int, *, native: bool = True,
                             **env_kwargs: Any) -> gym.vector.VectorEnv:
    """``n_envs`` copies of Platform2D in gymnasium's vector API (same-step autoreset).

    ``native`` steps all copies in one NumPy call; otherwise gymnasium's ``SyncVectorEnv``
    loops over ``Platform2D`` instances (the reference the native one is tested against).
    """
    if not (isinstance(n_envs, int) and n_envs > 0):
        raise ValueError(f"n_envs must be a positive int, got {n_envs!r}")
    if native:
        return Platform2DVectorEnv(n_envs, **env_kwargs)
    return gym.vector.SyncVectorEnv([lambda: Platform2D(**env_kwargs) for _ in range(n_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
