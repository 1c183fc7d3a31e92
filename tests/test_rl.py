"""lib.rl: Platform2D (checked by gymnasium), its native vector env, policies and A2C pieces."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from lib.rl import (
    GOAL,
    START,
    A2CSettings,
    AngleHead,
    GaussianHead,
    Platform2D,
    PlatformGeometry,
    make_platform_vector_env,
    nstep_returns,
    potential,
    tanh_mlp,
    train_a2c,
)


def test_platform2d_passes_gymnasium_check_env_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make("Platform2D-v1").unwrapped)
        check_env(gym.make("Platform2D-v1", step_size=0.3, goal_radius=0.2).unwrapped)


def test_heading_straight_to_the_goal_earns_the_maximum_return():
    env = Platform2D(step_size=0.1, goal_radius=0.1, max_episode_steps=100)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, START.astype(np.float32))
    total, steps, terminated = 0.0, 0, False
    while not terminated:
        obs, reward, terminated, truncated, _ = env.step(np.array([3.0, 3.0]))  # scale-free
        total, steps = total + reward, steps + 1
        assert not truncated
    # 2 sqrt 2 = 2.828 to cover, stop within 0.1 of the goal: ceil(27.28) steps
    assert steps == math.ceil((2 * math.sqrt(2) - 0.1) / 0.1)
    assert total >= env.geometry.max_return
    assert abs(total - (potential(START) - potential(obs))) < 1e-5  # the return telescopes


def test_leaving_the_platform_terminates_and_the_return_telescopes():
    env = Platform2D(half_width=1.5, step_size=0.2, goal_radius=0.05)
    env.reset()
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(np.array([-1.0, 0.0]))
        total, steps = total + reward, steps + 1
        if terminated:
            break
    assert steps == 3 and obs[0] < -1.5  # -1 -> -1.2 -> -1.4 -> -1.6: off the edge
    assert env.observation_space.contains(obs)
    np.testing.assert_allclose(total, potential(START) - potential(obs.astype(np.float64)),
                               atol=1e-6)
    assert total < 0


def test_time_limit_truncates_and_a_zero_action_stays_put():
    env = Platform2D(max_episode_steps=3)
    env.reset()
    for t in range(3):
        obs, reward, terminated, truncated, _ = env.step(np.zeros(2))
        assert reward == 0.0 and not terminated and truncated == (t == 2)
    np.testing.assert_array_equal(obs, START.astype(np.float32))


def test_bad_geometry_is_a_clear_error():
    with pytest.raises(ValueError, match="step_size must be a positive number"):
        PlatformGeometry(step_size=0.0)
    with pytest.raises(ValueError, match="half_width must exceed 1"):
        PlatformGeometry(half_width=0.9)
    with pytest.raises(ValueError, match="max_episode_steps"):
        Platform2D(max_episode_steps=0)
    with pytest.raises(ValueError, match="n_envs"):
        make_platform_vector_env(0)


def test_native_vector_env_equals_gymnasium_sync_vector_env():
    kw = dict(step_size=0.3, goal_radius=0.25, max_episode_steps=6)
    native = make_platform_vector_env(5, **kw)
    sync = make_platform_vector_env(5, native=False, **kw)
    assert native.observation_space == sync.observation_space
    np.testing.assert_array_equal(native.reset(seed=1)[0], sync.reset(seed=1)[0])
    rng = np.random.default_rng(0)
    finals = 0
    for _ in range(100):
        action = (rng.normal(size=(5, 2)) + 0.6).astype(np.float32)
        a, b = native.step(action), sync.step(action)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        assert ("_final_obs" in a[4]) == ("_final_obs" in b[4])
        if "_final_obs" in b[4]:
            np.testing.assert_array_equal(a[4]["_final_obs"], b[4]["_final_obs"])
            for i in np.flatnonzero(b[4]["_final_obs"]):
                np.testing.assert_array_equal(a[4]["final_obs"][i], b[4]["final_obs"][i])
                finals += 1
    assert finals > 20  # both terminations and truncations happened


def _brute_force_returns(rewards, terminated, truncated, final_values, last_values, gamma):
    steps, n = rewards.shape
    out = np.zeros((steps, n))
    for i in range(n):
        for t in range(steps):
            total, discount = 0.0, 1.0
            for u in range(t, steps):
                total += discount * rewards[u, i]
                discount *= gamma
                if terminated[u, i]:
                    break
                if truncated[u, i]:
                    total += discount * final_values[u, i]
                    break
            else:
                total += discount * last_values[i]
            out[t, i] = total
    return out


def test_nstep_returns_match_brute_force():
    rng = np.random.default_rng(0)
    steps, n = 7, 6
    rewards = rng.normal(size=(steps, n))
    terminated = rng.random((steps, n)) < 0.15
    truncated = (rng.random((steps, n)) < 0.15) & ~terminated
    final_values, last_values = rng.normal(size=(steps, n)), rng.normal(size=n)
    got = nstep_returns(*(torch.tensor(v) for v in (rewards, terminated, truncated,
                                                     final_values, last_values)), gamma=0.9)
    want = _brute_force_returns(rewards, terminated, truncated, final_values, last_values, 0.9)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert terminated.any() and truncated.any()
    with pytest.raises(ValueError, match="share one"):
        nstep_returns(torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.bool),
                      torch.zeros(2, 3, dtype=torch.bool), torch.zeros(2, 3), torch.zeros(3), 0.9)


def test_tanh_mlp_layout_and_policies():
    net = tanh_mlp(2, 3, (8, 4))
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert all(torch.all(m.bias == 0) for m in net if isinstance(m, torch.nn.Linear))
    assert net(torch.zeros(5, 2)).shape == (5, 3)
    with pytest.raises(ValueError, match="hidden"):
        tanh_mlp(2, 2, ())
    loc = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    gauss = GaussianHead(0.4, 2)(loc)
    a = torch.tensor([[0.0, 0.0], [1.5, 0.3]])
    torch.testing.assert_close(gauss.log_prob(a), torch.distributions.Normal(loc, 0.4)
                               .log_prob(a).sum(-1))
    sample = gauss.sample((20_000,), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sample.mean(0), loc, atol=0.02, rtol=0)
    torch.testing.assert_close(sample.std(0), torch.full_like(loc, 0.4), atol=0.01, rtol=0)
    angle = AngleHead(0.3)(torch.tensor([[math.pi / 4]]))
    torch.testing.assert_close(angle.env_action(torch.tensor([[math.pi / 2]])),
                               torch.tensor([[0.0, 1.0]]), atol=1e-7, rtol=0)
    with pytest.raises(ValueError, match="scale must be a positive"):
        GaussianHead(0.0, 2)


class _QuadraticBandit(gym.Env):
    """One step, observation 0, reward -(a - 0.5)^2: the best mean action is 0.5."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), -float((action[0] - 0.5) ** 2), True, False, {}


def _bandit_envs(n):
    return gym.vector.SyncVectorEnv([_QuadraticBandit for _ in range(n)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def test_a2c_learns_the_best_action_of_a_bandit_and_is_deterministic():
    settings = A2CSettings(n_envs=8, n_steps=2, updates=150, lr=2e-2, hidden=(8,),
                           snapshot_every=50)
    result = train_a2c(_bandit_envs(8), GaussianHead(0.3, 1), settings, seed=0,
                       show_progress=False)
    with torch.no_grad():
        best = result.actor(torch.zeros(1, 1)).item()
    assert abs(best - 0.5) < 0.1
    assert len(result.episodes) == 8 * 2 * 150 and len(result.snapshots) == 3
    again = train_a2c(_bandit_envs(8), GaussianHead(0.3, 1),
                      A2CSettings(n_envs=8, n_steps=2, updates=20, lr=2e-2, hidden=(8,)), seed=0,
                      show_progress=False)
    first20 = [e["return"] for e in result.episodes[: 8 * 2 * 20]]
    assert first20 == [e["return"] for e in again.episodes]


def test_a2c_rejects_mismatched_vector_envs():
    with pytest.raises(ValueError, match="SAME_STEP"):
        train_a2c(gym.vector.SyncVectorEnv([_QuadraticBandit]), GaussianHead(0.3, 1),
                  A2CSettings(n_envs=1, updates=1))
    with pytest.raises(ValueError, match="n_envs=2"):
        train_a2c(_bandit_envs(1), GaussianHead(0.3, 1), A2CSettings(n_envs=2, updates=1))
    with pytest.raises(ValueError, match="gamma"):
        A2CSettings(gamma=1.5)


def test_goal_and_start_are_the_papers():
    np.testing.assert_array_equal(START, [-1.0, -1.0])
    np.testing.assert_array_equal(GOAL, [1.0, 1.0])
    assert abs(PlatformGeometry(goal_radius=0.1).max_return - (2 * math.sqrt(2) - 0.1)) < 1e-12
