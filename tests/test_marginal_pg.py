"""lib.papers.marginal_pg: the exact bandit theory against Monte Carlo and its limits, the
estimators against swaps, the methods' heads, the Platform2D probe, tables and claims."""

import json
import math
import re

import numpy as np
import pytest
import torch

from lib.core import ArtifactCache
from lib.core.paths import REPO_ROOT
from lib.papers import marginal_pg as mpg
from lib.papers.marginal_pg import experiment as ex
from lib.papers.marginal_pg import method, theory, training
from lib.rl import (
    Platform2D,
    angular_gaussian_log_prob,
    clipped_gaussian_log_prob,
    tanh_mlp,
)

F64 = torch.float64


# ------------------------------------------------------------------ exact theory


@pytest.mark.parametrize("d", [2, 3, 5])
@pytest.mark.parametrize("goal, baseline", [(60.0, "none"), (60.0, "exact"), (90.0, "none"),
                                            (0.0, "exact")])
def test_exact_ratio_tends_to_the_concentrated_limits(d, goal, baseline):
    """(d-1)/d without a baseline, d/(d+1) centred or orthogonal, (d+3)/(d+4) centred along."""
    r = theory.directional_moments(d, 0.005, math.radians(goal), baseline)
    assert abs(r["mass"] - 1) < 1e-9
    limit = theory.concentrated_ratio(d, goal, baseline == "exact")
    assert abs(r["ratio"] - limit) < 0.005
    assert {(2, 60.0, "none"): 0.5, (2, 60.0, "exact"): 2 / 3, (2, 0.0, "exact"): 5 / 6} \
        .get((d, goal, baseline), limit) == pytest.approx(limit)


def test_exact_moments_match_monte_carlo_with_an_estimator_independent_of_lib_rl():
    """The standard estimator q (a - mu) / sigma^2 and the pathwise gradient use no angular
    density: their Monte Carlo mean and variance check the quadrature."""
    d, sigma, beta, n = 3, 0.5, math.radians(60), 400_000
    gen = torch.Generator().manual_seed(0)
    loc = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    goal = torch.tensor([math.cos(beta), math.sin(beta), 0.0], dtype=F64)
    a = loc + sigma * torch.randn(n, d, generator=gen, dtype=F64)
    x = a / a.norm(dim=-1, keepdim=True)
    q = (x * goal).sum(-1)
    for baseline in theory.BASELINES:
        exact = theory.directional_moments(d, sigma, beta, baseline)
        b = exact["mean_reward"] if baseline == "exact" else 0.0
        standard = (q - b)[:, None] * (a - loc) / sigma**2
        assert abs(standard.var(0).sum().item() / exact["variance_standard"] - 1) < 0.015
        _, marginal = method.directional_estimators(a, loc, sigma, q - b)
        assert abs(marginal.var(0).sum().item() / exact["variance_marginal"] - 1) < 0.015
    pathwise = (goal - q[:, None] * x) / a.norm(dim=-1, keepdim=True)  # d q(x(mu + s eps))/d mu
    se = (pathwise.var(0) / n).sqrt()
    z = (pathwise.mean(0)[:2] - torch.tensor(exact["gradient"], dtype=F64)).abs() / se[:2]
    assert z.max().item() < 4
    assert abs(q.mean().item() - exact["mean_reward"]) < 4 * (q.var() / n).sqrt().item()


def test_clipped_exact_moments_match_monte_carlo():
    loc, sigma, n = -1.0, 1.0, 400_000
    a = loc + sigma * torch.randn(n, 1, generator=torch.Generator().manual_seed(1), dtype=F64)
    q = -(a.clamp(-1, 1) - 0.8) ** 2
    for baseline in theory.BASELINES:
        exact = theory.clipped_moments(loc, sigma, baseline=baseline)
        b = exact["mean_reward"] if baseline == "exact" else 0.0
        g_s, g_m = method.clipped_estimators(a, loc, sigma, -1.0, 1.0, q - b)
        assert abs(g_s.var().item() / exact["variance_standard"] - 1) < 0.02
        assert abs(g_m.var().item() / exact["variance_marginal"] - 1) < 0.02
        assert abs(g_s.mean().item() - exact["gradient"]) < 4 * (g_s.var() / n).sqrt().item()
    assert exact["clipped_fraction"] == pytest.approx(0.5 + 0.02275, abs=1e-4)  # P(z>2) above


def test_theory_rejects_bad_inputs():
    with pytest.raises(ValueError, match="d must be an int >= 2"):
        theory.directional_moments(1, 0.5, 0.0)
    with pytest.raises(ValueError, match="valid ones are none, exact"):
        theory.directional_moments(2, 0.5, 0.0, "mean")
    with pytest.raises(ValueError, match="sigma must be positive"):
        theory.directional_moments(2, 0.0, 0.0)


# ------------------------------------------------------------------ the bandit experiment


def _bandit_cfg(**knobs):
    return mpg.CONFIGS.get("smoke", bandit_seeds=3, bandit_samples=20_000, bandit_items=50,
                           **knobs)


def test_directional_bandit_intervals_cover_the_exact_ratios_and_catch_a_swap():
    """Without a baseline about 1/2, centred about 2/3, both unbiased. A marginal estimator
    silently replaced by the standard one gives 1 and fails here."""
    rows = {r["baseline"]: r for r in ex.directional_case(_bandit_cfg(), 2, 0.05, 60.0)}
    for baseline, want in (("none", 0.5), ("exact", 2 / 3)):
        r = rows[baseline]
        assert r["lo"] <= r["exact"] <= r["hi"]
        assert abs(r["exact"] - want) < 0.01 and r["hi"] - r["lo"] < 0.03
        assert r["z_standard"] < 4.5 and r["z_marginal"] < 4.5
    assert rows["none"]["hi"] < rows["exact"]["lo"]


def test_clipped_bandit_intervals_cover_the_exact_ratios_and_catch_a_swap():
    rows = {r["baseline"]: r for r in ex.clipped_case(_bandit_cfg(), -1.0)}
    for baseline, want in (("none", 0.564), ("exact", 0.876)):
        r = rows[baseline]
        assert r["lo"] <= r["exact"] <= r["hi"] and abs(r["exact"] - want) < 0.002
        assert r["z_standard"] < 4.5 and r["z_marginal"] < 4.5
    inside = ex.clipped_case(_bandit_cfg(clip_sigma=0.1), 0.0)  # nothing clipped: same estimator
    assert all(abs(r["ratio"] - 1) < 1e-12 for r in inside)


# ------------------------------------------------------------------ methods and their heads


def test_each_method_name_gets_its_estimator():
    """A swap in the name -> head mapping (APG or CAPG silently standard) fails here."""
    gen = torch.Generator().manual_seed(0)
    loc = torch.randn(5, 2, generator=gen, dtype=F64)
    a = loc + 0.7 * torch.randn(5, 2, generator=gen, dtype=F64)
    gaussian = torch.distributions.Normal(loc, 0.3).log_prob(a).sum(-1)
    apg = method.platform_head("APG", 0.3, 0.3)(loc).log_prob(a)
    torch.testing.assert_close(apg, angular_gaussian_log_prob(
        a / a.norm(dim=-1, keepdim=True), loc, 0.3))
    torch.testing.assert_close(method.platform_head("Gaussian", 0.3, 0.3)(loc).log_prob(a),
                               gaussian)
    assert (apg - gaussian).abs().max() > 1.0  # the two densities differ
    y = 1.5 * a
    capg = method.control_head("CAPG", 0.3, -1.0, 1.0, 2)(loc).log_prob(y)
    torch.testing.assert_close(capg, clipped_gaussian_log_prob(y.clamp(-1, 1), loc, 0.3, -1.0,
                                                               1.0).sum(-1))
    torch.testing.assert_close(method.control_head("clipped Gaussian", 0.3, -1.0, 1.0, 2)(loc)
                               .log_prob(y), torch.distributions.Normal(loc, 0.3).log_prob(y)
                               .sum(-1))
    assert method.platform_head("angle", 0.3, 0.2).loc_dim == 1
    with pytest.raises(ValueError, match="valid ones are APG, Gaussian, angle"):
        method.platform_head("PPO", 0.3, 0.3)
    with pytest.raises(ValueError, match="valid ones are CAPG, clipped Gaussian"):
        method.control_head("DDPG", 0.3, -1.0, 1.0, 1)


def test_gradient_variance_matches_per_sample_autograd():
    torch.manual_seed(0)
    actor = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.Tanh(),
                                torch.nn.Linear(5, 2)).double()
    states = torch.randn(2, 2, dtype=F64)
    k, sigma = 5, 0.4
    with torch.no_grad():
        actions = actor(states)[:, None] + sigma * torch.randn(2, k, 2, dtype=F64)
    adv = torch.randn(2, k, dtype=F64)
    got = method.estimator_gradient_variance(actor, states, actions, adv, sigma)
    for estimator in ("standard", "marginal"):
        head = method.platform_head("APG" if estimator == "marginal" else "Gaussian", sigma, 1.0)
        for i in range(2):
            grads = []
            for j in range(k):
                actor.zero_grad()
                (adv[i, j] * head(actor(states[i:i + 1])).log_prob(actions[i, j][None])).sum() \
                    .backward()
                grads.append(torch.cat([p.grad.flatten() for p in actor.parameters()]))
            want = torch.stack(grads).var(0).sum().item()
            assert abs(got[estimator][i].item() - want) < 1e-9 * (1 + want)


def test_centre_per_state_removes_each_rows_mean():
    adv = torch.tensor([[1.0, 2.0, 6.0], [0.0, -3.0, 3.0]], dtype=F64)
    torch.testing.assert_close(method.centre_per_state(adv),
                               torch.tensor([[-2.0, -1.0, 3.0], [0.0, -3.0, 3.0]], dtype=F64))


# ------------------------------------------------------------------ the Platform2D probe


def _probe_cfg(**knobs):
    return mpg.CONFIGS.get("smoke", variance_states=3, variance_rollout=3, variance_actions=32,
                           **knobs)


def _nets(cfg, seed=0):
    torch.manual_seed(seed)
    return tanh_mlp(2, 2, cfg.hidden).double(), tanh_mlp(2, 1, cfg.hidden).double()


def test_probe_advantages_equal_single_environment_steps():
    """r + gamma (1 - terminal) V(s') - V(s), one action at a time through Platform2D itself."""
    cfg = _probe_cfg(step_size=0.3)
    actor, critic = _nets(cfg)
    gen = torch.Generator().manual_seed(4)
    states = torch.tensor([[-1.0, -1.0], [1.35, 0.2], [0.95, 1.0]], dtype=F64)
    loc, actions, adv = training.probe_advantages(actor, critic, states, cfg, gen)
    env = Platform2D(cfg.half_width, cfg.step_size, cfg.goal_radius, cfg.max_episode_steps)
    terminal_seen = 0
    for i in range(len(states)):
        for j in range(0, cfg.variance_actions, 7):
            env.reset()
            env._position = states[i].numpy().copy()
            nxt, reward, terminated, _, _ = env.step(actions[i, j].numpy())
            with torch.no_grad():
                v_next = 0.0 if terminated else critic(torch.as_tensor(nxt, dtype=F64)).item()
                want = reward + cfg.gamma * v_next - critic(states[i]).item()
            assert abs(adv[i, j].item() - want) < 1e-5  # the env stores float32 positions
            terminal_seen += terminated
    assert terminal_seen > 0  # the edge and the goal state exercise the terminal branch
    torch.testing.assert_close(loc, actor(states).detach())


def test_probe_centring_removes_the_critics_offset():
    """Add 50 to the critic's output: the critic's advantages now carry a constant gamma * 50
    (no probe state is near an edge or the goal), the centred ones are unchanged. An
    uncentred 'centred' probe fails the first check; the offset moves the critic's ratio
    towards the no-baseline regime."""
    cfg = _probe_cfg()
    actor, critic = _nets(cfg, 1)
    probe = training.platform_gradient_variance
    base = probe(actor.state_dict(), critic.state_dict(), cfg, seed=3)
    with torch.no_grad():
        critic[-1].bias += 50.0
    shifted = probe(actor.state_dict(), critic.state_dict(), cfg, seed=3)
    for key in ("centred", "loc_centred"):
        for est in ("standard", "marginal"):
            np.testing.assert_allclose(shifted[key][est], base[key][est], rtol=1e-8)
    ratio = {k: np.sum(v["marginal"]) / np.sum(v["standard"]) for k, v in shifted.items()
             if isinstance(v, dict)}
    assert ratio["loc_critic"] < ratio["loc_centred"] - 0.1
    assert len(base["critic"]["standard"]) == cfg.variance_states * cfg.variance_rollout
    assert all(0 < r < 1 for r in ratio.values())


def test_probe_states_are_on_policy_and_step_major():
    cfg = _probe_cfg()
    actor, _ = _nets(cfg)
    states = training.probe_states(actor, cfg, torch.Generator().manual_seed(0))
    assert states.shape == (cfg.variance_rollout * cfg.variance_states, 2)
    start = states[: cfg.variance_states]
    torch.testing.assert_close(start, torch.tensor([[-1.0, -1.0]], dtype=F64).expand_as(start))
    steps = (states[cfg.variance_states:2 * cfg.variance_states] - start).norm(dim=-1)
    torch.testing.assert_close(steps, torch.full_like(steps, cfg.step_size), atol=1e-6, rtol=0)


# ------------------------------------------------------------------ Platform2D runs, tables


def test_apg_and_gaussian_runs_share_initial_weights_and_differ_only_by_the_estimator(tmp_path):
    cfg = mpg.CONFIGS.get("smoke", updates=6, eval_points=2, eval_episodes=4,
                          variance_states=2, variance_rollout=2, variance_actions=8)
    cache = ArtifactCache(tmp_path)
    runs = {m: training.platform_run(cfg, m, 0, "sgd", 0.3, cache=cache, show_progress=False)
            for m in ("APG", "Gaussian")}
    apg, gauss = runs["APG"]["points"], runs["Gaussian"]["points"]
    assert [p["update"] for p in apg] == [0, 3, 6]
    assert apg[0]["returns"] == gauss[0]["returns"]  # same weights, same evaluation noise
    assert apg[0]["probe"] == gauss[0]["probe"]
    assert apg[-1]["returns"] != gauss[-1]["returns"]  # trained by different estimators
    again = training.platform_run(cfg, "APG", 0, "sgd", 0.3, cache=cache)
    assert again["episode_returns"] == runs["APG"]["episode_returns"]
    control = training.train_platform(cfg, mpg.POSITIVE_CONTROL, 0, "sgd", 0.3, probe=False)
    assert control["total_env_steps"] == 12 * cfg.n_steps * 6 and "probe" not in \
        control["points"][0]


def _fake_run(seed, successes, marginal_scale=0.5, copies=2):
    returns = [3.0 if s else 1.0 for s in successes]
    probe = {k: {"standard": [1.0, 2.0, 3.0, 4.0],
                 "marginal": [marginal_scale * v for v in (1.0, 2.0, 3.0, 4.0)]}
             for k in ("critic", "centred", "loc_critic", "loc_centred")}
    return {"seed": seed, "copies": copies, "train_seconds": 1.0,
            "points": [{"update": u, "env_steps": u, "returns": returns, "probe": probe}
                       for u in (0, 10)]}


def test_paired_comparisons_and_probe_ratio_on_known_runs():
    runs = {"APG": [_fake_run(s, [1, 1, 1, 0], 0.5) for s in range(3)],
            "Gaussian": [_fake_run(s, [0, 0, 1, 0], 0.5) for s in range(3)]}
    iv = ex.paired_comparison(runs, "APG", "Gaussian", "success", max_return=2.5)
    assert iv.estimate == pytest.approx(0.5) and 0.0 <= iv.lo < 0.5 < iv.hi <= 1.0
    assert ex.paired_comparison(runs, "APG", "Gaussian", "return", 2.5).estimate == \
        pytest.approx(1.0)
    ratio = ex.probe_ratio(runs, "centred")
    assert (ratio.estimate, ratio.lo, ratio.hi) == pytest.approx((0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="valid ones are return, success, auc"):
        ex.paired_comparison(runs, "APG", "Gaussian", "median", 2.5)
    with pytest.raises(ValueError, match="valid ones are all, init, trained"):
        ex.probe_ratio(runs, "centred", "late")


# ------------------------------------------------------------------ configs, claims, chapter


def test_configs_and_methods_reject_unknown_names():
    with pytest.raises(ValueError, match="valid scales"):
        mpg.CONFIGS["huge"]
    with pytest.raises(ValueError, match="valid knobs"):
        mpg.CONFIGS.get("smoke", sigmaa=0.2)
    with pytest.raises(ValueError, match="valid ones are CAPG"):
        training.train_control(mpg.CONFIGS["smoke"], "DDPG")
    with pytest.raises(ValueError, match="valid ones are sgd, adam"):
        mpg.config.lr_grid(mpg.CONFIGS["smoke"], "lbfgs")
    with pytest.raises(ValueError, match="Gaussian, 1.5x batch"):
        training.method_batch(mpg.CONFIGS["smoke"], "PPO")
    assert mpg.DATA_PARALLEL is False


def test_control_run_path_on_pendulum_runs_and_evaluates():
    cfg = mpg.CONFIGS.get("smoke", control_updates=3, control_n_envs=2, eval_episodes=2)
    for name in mpg.CONTROL_METHODS:
        out = training.train_control(cfg, name, 0, show_progress=False)
        assert out["total_env_steps"] == 3 * 2 * cfg.n_steps
        assert len(out["final_returns"]) == 2 and all(r < 0 for r in out["final_returns"])


def _chapter_labels():
    nb = json.loads((REPO_ROOT / "chapters" / "marginal_pg.ipynb").read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return set(re.findall(r"^\(([\w-]+)\)=\s*$", text, flags=re.M))


def test_claims_have_sections_in_the_chapter_and_verdicts_follow_the_intervals():
    labels = _chapter_labels()
    assert {c.section for c in mpg.CLAIMS} <= labels
    metrics = {}
    for claim in mpg.CLAIMS:
        prefix = claim.metrics[0][: -len("_estimate")]
        metrics |= {f"{prefix}_estimate": 0.66, f"{prefix}_lo": 0.65, f"{prefix}_hi": 0.67}
    verdicts = dict(zip([c.id for c in mpg.CLAIMS], mpg.verdict_table(metrics)["verdict"],
                        strict=True))
    assert verdicts["bandit-ratio-half-centred"] == "not reproduced"  # 0.66 is not about 1/2
    assert verdicts["platform-variance-ratio"] == "not reproduced"
    assert verdicts["apg-success-sgd"] == "reproduced"  # +0.66 excludes 0, paper's sign
    assert verdicts["bandit-variance-reduction"] == "not reproduced"  # +0.66: wrong direction
    assert mpg.verdict_table({})["verdict"].eq("not measured").all()
