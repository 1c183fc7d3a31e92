"""lib.rl: Platform2D (checked by gymnasium), its native vector env, policies and A2C: the update
against gradients written out by hand, the critic trained, clipping, evaluation pairing."""

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
    ClippedHead,
    DirectionalHead,
    GaussianHead,
    Platform2D,
    PlatformGeometry,
    Rollout,
    a2c_update,
    evaluate_policy,
    make_optimizer,
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


# ------------------------------------------------------------------ A2C: the update itself


def _angular_log_density_by_quadrature(x: np.ndarray, loc: np.ndarray, sigma: float) -> float:
    """log f(x) of a / |a|, a ~ N(loc, sigma^2 I) in R^2, by integrating the Gaussian density
    along the ray: f(x) = int_0^inf N(r x; loc, sigma^2 I) r dr (independent of lib.rl)."""
    from scipy import integrate, stats

    def integrand(r):
        return stats.multivariate_normal.pdf(r * x, loc, sigma**2 * np.eye(2)) * r

    return math.log(integrate.quad(integrand, 0, np.inf, epsabs=1e-14, epsrel=1e-12)[0])


def _oracle_score(kind: str, action: np.ndarray, loc: np.ndarray, sigma: float) -> np.ndarray:
    """grad_loc log p(action) by central differences of an independent log-density."""
    from scipy import stats

    def log_p(m):
        if kind == "angular":
            return _angular_log_density_by_quadrature(action / np.linalg.norm(action), m, sigma)
        if kind == "clipped":  # clip to [-1, 1], coordinates independent
            y = np.clip(action, -1.0, 1.0)
            return sum(stats.norm.logcdf(-1.0, mi, sigma) if yi <= -1 else
                       stats.norm.logsf(1.0, mi, sigma) if yi >= 1 else
                       stats.norm.logpdf(yi, mi, sigma) for yi, mi in zip(y, m, strict=True))
        return stats.multivariate_normal.logpdf(action, m, sigma**2 * np.eye(len(m)))

    h = 1e-5
    return np.array([(log_p(loc + h * e) - log_p(loc - h * e)) / (2 * h) for e in np.eye(len(loc))])


def _linear_nets(seed: int):
    torch.manual_seed(seed)
    actor, critic = torch.nn.Linear(2, 2).double(), torch.nn.Linear(2, 1).double()
    return actor, critic


@pytest.mark.parametrize("kind, head", [
    ("angular", DirectionalHead(0.6, 2, "marginal")),
    ("gaussian", DirectionalHead(0.6, 2, "standard")),
    ("clipped", ClippedHead(0.6, -1.0, 1.0, 2, "marginal")),
    ("gaussian", ClippedHead(0.6, -1.0, 1.0, 2, "standard")),
])
def test_a2c_update_is_one_sgd_step_on_the_hand_computed_actor_and_critic_gradients(kind, head):
    """Linear actor loc = W s + b and critic v = c's + c0, plain SGD, no clipping: the new
    weights are the old minus lr times the A2C gradients written out by hand, with the score
    of an independent log-density (quadrature along the ray for APG, scipy for CAPG)."""
    actor, critic = _linear_nets(0)
    gen = torch.Generator().manual_seed(1)
    obs = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    actions = 1.5 * torch.randn(6, 2, generator=gen, dtype=torch.float64)
    returns = torch.randn(6, generator=gen, dtype=torch.float64)
    settings = A2CSettings(n_envs=6, n_steps=1, lr=0.05, optimizer="sgd", value_coef=0.7)
    before = [p.detach().clone() for p in (*actor.parameters(), *critic.parameters())]
    a2c_update(actor, critic, head, make_optimizer(actor, critic, settings),
               Rollout(obs, actions, returns), settings)
    w, b, c, c0 = (p.numpy() for p in before)
    s, a, r = obs.numpy(), actions.numpy(), returns.numpy()
    adv = r - (s @ c.T + c0)[:, 0]
    scores = np.stack([_oracle_score(kind, a[t], w @ s[t] + b, 0.6) for t in range(6)])
    grad_w = -(adv[:, None, None] * scores[:, :, None] * s[:, None, :]).mean(0)
    grad_b = -(adv[:, None] * scores).mean(0)
    grad_c = -2 * settings.value_coef * (adv[:, None] * s).mean(0, keepdims=True)
    grad_c0 = -2 * settings.value_coef * adv.mean(keepdims=True)
    for p, old, g in zip((*actor.parameters(), *critic.parameters()), (w, b, c, c0),
                         (grad_w, grad_b, grad_c, grad_c0), strict=True):
        np.testing.assert_allclose(p.detach().numpy(), old - settings.lr * g, rtol=1e-6,
                                   atol=1e-8)


@pytest.mark.parametrize("clip_mode", ["joint", "separate"])
def test_gradient_norm_clipping_joint_or_per_network(clip_mode):
    actor, critic = _linear_nets(2)
    gen = torch.Generator().manual_seed(3)
    batch = Rollout(torch.randn(8, 2, generator=gen, dtype=torch.float64),
                    torch.randn(8, 2, generator=gen, dtype=torch.float64),
                    10 * torch.randn(8, generator=gen, dtype=torch.float64))
    free = A2CSettings(n_envs=8, n_steps=1, lr=1.0, optimizer="sgd")
    clipped = A2CSettings(n_envs=8, n_steps=1, lr=1.0, optimizer="sgd", max_grad_norm=0.1,
                          clip_mode=clip_mode)
    steps = {}
    for name, settings in (("free", free), ("clipped", clipped)):
        a, c = _linear_nets(2)
        start = [p.detach().clone() for p in (*a.parameters(), *c.parameters())]
        a2c_update(a, c, GaussianHead(0.5, 2), make_optimizer(a, c, settings), batch, settings)
        steps[name] = [s - p.detach() for s, p in zip(start, (*a.parameters(), *c.parameters()),
                                                      strict=True)]
    norm = lambda ts: torch.sqrt(sum((t**2).sum() for t in ts)).item()  # noqa: E731
    if clip_mode == "joint":
        assert abs(norm(steps["clipped"]) - 0.1) < 1e-6  # clip_grad_norm_ adds 1e-6
        scale = 0.1 / norm(steps["free"])
        for f, g in zip(steps["free"], steps["clipped"], strict=True):
            torch.testing.assert_close(g, scale * f, rtol=1e-5, atol=1e-9)
    else:
        assert abs(norm(steps["clipped"][:2]) - 0.1) < 1e-6
        assert abs(norm(steps["clipped"][2:]) - 0.1) < 1e-6


class _ConstantReward(gym.Env):
    """Observation 0, reward 1 every step, never ends: V = 1 / (1 - gamma)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 1.0, False, False, {}


@pytest.mark.parametrize("optimizer, lr", [("adam", 3e-2), ("sgd", 5e-2)])
def test_train_a2c_trains_the_critic_to_the_discounted_value(optimizer, lr):
    """A critic left at initialisation (the public code's A2C) stays near 0, not 2."""
    envs = gym.vector.SyncVectorEnv([_ConstantReward] * 4,
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    settings = A2CSettings(n_envs=4, n_steps=4, updates=300, gamma=0.5, lr=lr, hidden=(8,),
                           optimizer=optimizer)
    result = train_a2c(envs, GaussianHead(0.3, 1), settings, seed=0, show_progress=False)
    with torch.no_grad():
        value = result.critic(torch.zeros(1, 1)).item()
    assert abs(value - 2.0) < 0.1
    assert result.losses[-1]["critic"] < 0.01 < result.losses[0]["critic"]


def test_train_a2c_obeys_the_dry_run_step_limit(monkeypatch):
    monkeypatch.setenv("BOOK_MAX_STEPS", "3")
    result = train_a2c(_bandit_envs(2), GaussianHead(0.3, 1),
                       A2CSettings(n_envs=2, n_steps=1, updates=50, hidden=(4,)), seed=0,
                       show_progress=False)
    assert result.updates == 3 and len(result.losses) == 3


def test_evaluate_policy_pairs_episodes_by_common_random_numbers():
    actor = torch.nn.Linear(2, 2)
    torch.nn.init.zeros_(actor.weight)
    with torch.no_grad():
        actor.bias.copy_(torch.tensor([0.3, 0.2]))

    def evaluate(head, seed):
        envs = make_platform_vector_env(6, step_size=0.2, goal_radius=0.2, max_episode_steps=40)
        return evaluate_policy(envs, actor, head, seed)

    marginal = evaluate(DirectionalHead(0.5, 2, "marginal"), 7)
    # the same policy under the other estimator, same seed: the same actions, episode by episode
    np.testing.assert_array_equal(marginal, evaluate(DirectionalHead(0.5, 2, "standard"), 7))
    assert not np.array_equal(marginal, evaluate(DirectionalHead(0.5, 2, "marginal"), 8))
    # a nearly deterministic policy straight at the goal reaches it in every copy
    with torch.no_grad():
        actor.bias.copy_(torch.tensor([5.0, 5.0]))
    best = evaluate(DirectionalHead(1e-3, 2, "marginal"), 0)
    assert np.all(best >= PlatformGeometry(step_size=0.2, goal_radius=0.2).max_return)


def test_a2c_settings_reject_unknown_optimizers_and_clip_modes():
    with pytest.raises(ValueError, match="valid ones are sgd, adam"):
        A2CSettings(optimizer="rmsprop")
    with pytest.raises(ValueError, match="valid ones are joint, separate"):
        A2CSettings(clip_mode="global")
    with pytest.raises(ValueError, match="max_grad_norm"):
        A2CSettings(max_grad_norm=-1.0)
