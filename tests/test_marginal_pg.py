"""The marginal policy gradient pieces against quadrature, numerical derivatives, mpmath, scipy."""

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import integrate, stats

from lib.papers import marginal_pg as mpg

torch.set_default_dtype(torch.float32)
F64 = torch.float64


def _mp_log_m(alpha: float, k: int) -> float:
    """log M_k at 50 digits from parabolic cylinder functions:
    M_k(a) = k! e^{-a^2/4} D_{-k-1}(-a) / sqrt(2 pi)."""
    mpmath.mp.dps = 50
    a = mpmath.mpf(alpha)
    value = (mpmath.factorial(k) * mpmath.exp(-a**2 / 4) * mpmath.pcfd(-k - 1, -a)
             / mpmath.sqrt(2 * mpmath.pi))
    return float(mpmath.log(value))


ALPHAS = [-1e4, -300.0, -40.0, -10.0, -3.5, -3.0, -2.9, -1.0, -0.2, 0.0, 0.7, 4.0, 60.0, 1e5]


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_log_m_matches_mpmath_for_any_alpha(k):
    got = mpg.log_m(torch.tensor(ALPHAS, dtype=F64), k)
    want = torch.tensor([_mp_log_m(a, k) for a in ALPHAS], dtype=F64)
    assert torch.all(torch.isfinite(got))
    torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11)


def test_plain_recursion_agrees_where_it_is_accurate_and_log_m_derivative_is_k_ratio():
    alpha = torch.linspace(-2.5, 6.0, 41, dtype=F64)
    plain = mpg.m_functions(alpha, 4)
    for k in range(5):
        torch.testing.assert_close(mpg.log_m(alpha, k), plain[k].log(), rtol=1e-10, atol=1e-10)
    # M_k' = k M_{k-1}: autograd of log M_k equals k M_{k-1} / M_k, here by central differences
    a = alpha.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mpg.log_m(a, 3).sum(), a)
    h = 1e-6
    numeric = (mpg.log_m(alpha + h, 3) - mpg.log_m(alpha - h, 3)) / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(grad, 3 * plain[2] / plain[3], rtol=1e-10, atol=1e-12)


def test_log_m_gradcheck_across_the_split():
    alpha = torch.tensor([-50.0, -3.2, -2.8, 0.3, 8.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: mpg.log_m(a, 4), (alpha,))


def test_m_ratio_rejects_k0_and_orders_are_checked():
    with pytest.raises(ValueError, match="k >= 1"):
        mpg.m_ratio(torch.zeros(1), 0)
    with pytest.raises(ValueError, match="non-negative int"):
        mpg.log_m(torch.zeros(1), -1)


@pytest.mark.parametrize("scale", [0.05, 0.5, 2.0, 20.0])
def test_density_integrates_to_one_on_the_circle(scale):
    n = 4000
    theta = torch.arange(n, dtype=F64) * (2 * math.pi / n)  # trapezoid = exact for periodic
    x = torch.stack([theta.cos(), theta.sin()], -1)
    loc = torch.tensor([0.8, -0.3], dtype=F64)
    mass = mpg.angular_gaussian_log_prob(x, loc, scale).exp().sum() * (2 * math.pi / n)
    assert abs(mass.item() - 1) < 1e-9


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_density_integrates_to_one_on_the_sphere_s2(scale):
    # Gauss-Legendre in cos(theta) times trapezoid in phi, concentrated mass needs many nodes
    nodes, weights = np.polynomial.legendre.leggauss(240)
    phi = np.arange(240) * (2 * math.pi / 240)
    z, p = np.meshgrid(nodes, phi, indexing="ij")
    r = np.sqrt(1 - z**2)
    x = torch.tensor(np.stack([r * np.cos(p), r * np.sin(p), z], -1), dtype=F64)
    loc = torch.tensor([0.2, 0.5, 0.9], dtype=F64)
    dens = mpg.angular_gaussian_log_prob(x, loc, scale).exp().numpy()
    mass = (dens * weights[:, None]).sum() * (2 * math.pi / 240)
    assert abs(mass - 1) < 1e-8


def test_general_covariance_density_integrates_to_one_and_matches_isotropic():
    n = 4000
    theta = torch.arange(n, dtype=F64) * (2 * math.pi / n)
    x = torch.stack([theta.cos(), theta.sin()], -1)
    loc = torch.tensor([0.5, 0.4], dtype=F64)
    cov = torch.tensor([[0.3, 0.12], [0.12, 0.08]], dtype=F64)
    mass = mpg.angular_gaussian_log_prob(x, loc, covariance=cov).exp().sum() * (2 * math.pi / n)
    assert abs(mass.item() - 1) < 1e-9
    iso = mpg.angular_gaussian_log_prob(x, loc, covariance=0.49 * torch.eye(2, dtype=F64))
    torch.testing.assert_close(iso, mpg.angular_gaussian_log_prob(x, loc, 0.7))


def test_density_matches_the_histogram_of_sampled_directions():
    dist = mpg.AngularGaussian(torch.tensor([0.6, 0.2]), scale=0.8)
    x = dist.sample((200_000,), generator=torch.Generator().manual_seed(0)).double()
    theta = torch.atan2(x[:, 1], x[:, 0]).numpy()
    hist, edges = np.histogram(theta, bins=24, range=(-math.pi, math.pi), density=True)
    centers = torch.tensor((edges[:-1] + edges[1:]) / 2, dtype=F64)
    dens = mpg.angular_gaussian_log_prob(torch.stack([centers.cos(), centers.sin()], -1),
                                         torch.tensor([0.6, 0.2], dtype=F64), 0.8).exp()
    assert np.max(np.abs(hist - dens.numpy())) < 0.01  # bin width 0.26 rad, 200k samples


def _numeric_grad(fn, z: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    grad = torch.zeros_like(z)
    for i in range(z.numel()):
        e = torch.zeros_like(z).flatten()
        e[i] = h
        e = e.view_as(z)
        grad.view(-1)[i] = (fn(z + e) - fn(z - e)) / (2 * h)
    return grad


@pytest.mark.parametrize("d", [2, 3, 5])
@pytest.mark.parametrize("scale", [0.03, 0.4, 3.0, 40.0])
def test_isotropic_score_equals_numerical_derivative(d, scale):
    gen = torch.Generator().manual_seed(d)
    loc = torch.randn(d, generator=gen, dtype=F64)
    xs = torch.randn(6, d, generator=gen, dtype=F64)
    xs[0] = -loc  # the direction opposite the mean: alpha very negative for small sigma
    xs = xs / xs.norm(dim=-1, keepdim=True)
    for x in xs:
        numeric = _numeric_grad(lambda m, x=x: mpg.angular_gaussian_log_prob(x, m, scale), loc)
        closed = mpg.angular_gaussian_score_isotropic(x, loc, scale)
        m = loc.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(mpg.angular_gaussian_log_prob(x, m, scale), m)
        scale_of = 1 + numeric.abs().max().item()
        assert (closed - numeric).abs().max().item() < 1e-6 * scale_of
        assert (auto - closed).abs().max().item() < 1e-9 * scale_of


def test_the_public_recursion_coefficient_would_fail_these_checks():
    """Replacing k by d + 1 in M_{k+1} = alpha M_k + k M_{k-1} (the public code) breaks the
    normalisation as soon as sigma is not small: the tests above can tell."""
    d, n = 3, 120
    nodes, weights = np.polynomial.legendre.leggauss(n)
    phi = np.arange(n) * (2 * math.pi / n)
    z, p = np.meshgrid(nodes, phi, indexing="ij")
    r = np.sqrt(1 - z**2)
    x = torch.tensor(np.stack([r * np.cos(p), r * np.sin(p), z], -1), dtype=F64)
    loc, scale = torch.tensor([0.2, 0.5, 0.9], dtype=F64), 1.0
    alpha = (x * loc).sum(-1) / scale
    m0 = torch.special.ndtr(alpha)
    m1 = alpha * m0 + torch.exp(-alpha**2 / 2) / math.sqrt(2 * math.pi)
    wrong_m2 = alpha * m1 + (d + 1) * m0  # the wrong coefficient
    log_f = -0.5 * (d - 1) * math.log(2 * math.pi) + 0.5 * (alpha**2 - loc.pow(2).sum()) \
        + wrong_m2.log()
    mass = (log_f.exp().numpy() * weights[:, None]).sum() * (2 * math.pi / n)
    assert abs(mass - 1) > 0.1


@pytest.mark.parametrize("scale_factor", [0.05, 1.0, 8.0])
def test_general_covariance_scores_equal_numerical_derivatives(scale_factor):
    gen = torch.Generator().manual_seed(1)
    d = 3
    b = torch.randn(d, d, generator=gen, dtype=F64)
    cov = scale_factor * (b @ b.T / d + 0.3 * torch.eye(d, dtype=F64))
    loc = torch.randn(d, generator=gen, dtype=F64)
    x = torch.randn(d, generator=gen, dtype=F64)
    x = x / x.norm()
    g_mu, g_sigma = mpg.angular_gaussian_score(x, loc, cov)
    num_mu = _numeric_grad(lambda m: mpg.angular_gaussian_log_prob(x, m, covariance=cov), loc)
    assert (g_mu - num_mu).abs().max().item() < 1e-6 * (1 + num_mu.abs().max().item())
    h = 1e-6
    for i in range(d):
        for j in range(i, d):
            e = torch.zeros(d, d, dtype=F64)
            e[i, j] = e[j, i] = 1.0
            numeric = (mpg.angular_gaussian_log_prob(x, loc, covariance=cov + h * e)
                       - mpg.angular_gaussian_log_prob(x, loc, covariance=cov - h * e)) / (2 * h)
            closed = (g_sigma * e).sum()  # tr(G E) for symmetric E
            assert abs(closed.item() - numeric.item()) < 1e-6 * (1 + abs(numeric.item()))


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="unit vectors"):
        mpg.angular_gaussian_log_prob(torch.tensor([1.0, 1.0]), torch.zeros(2), 1.0)
    with pytest.raises(ValueError, match="exactly one"):
        mpg.angular_gaussian_log_prob(torch.tensor([1.0, 0.0]), torch.zeros(2))
    with pytest.raises(ValueError, match="positive"):
        mpg.AngularGaussian(torch.zeros(2), scale=-1.0)
    with pytest.raises(ValueError, match="low < high"):
        mpg.clipped_gaussian_log_prob(torch.zeros(1), torch.zeros(1), 1.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="valid ones are standard, marginal"):
        mpg.DirectionalHead(scale=0.5, estimator="mpg")


def test_capg_log_prob_matches_scipy_at_the_bounds_and_inside():
    loc = torch.tensor([-2.0, -0.3, 0.0, 0.9, 3.0, 30.0], dtype=F64)
    scale, low, high = 0.7, -1.0, 1.0
    for y_value in (low, -0.25, 0.6, high, -5.0, 5.0):
        y = torch.full_like(loc, y_value)
        got = mpg.clipped_gaussian_log_prob(y, loc, scale, low, high).numpy()
        if y_value <= low:
            want = stats.norm.logcdf(low, loc.numpy(), scale)
        elif y_value >= high:
            want = stats.norm.logsf(high, loc.numpy(), scale)
        else:
            want = stats.norm.logpdf(y_value, loc.numpy(), scale)
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_capg_score_is_the_derivative_of_its_log_prob():
    loc = torch.tensor([-2.0, -0.3, 0.4, 3.0, 12.0], dtype=F64)
    for y_value in (-1.0, 0.2, 1.0):
        y = torch.full_like(loc, y_value)
        closed = mpg.clipped_gaussian_score_loc(y, loc, 0.5, -1.0, 1.0)
        h = 1e-6
        numeric = (mpg.clipped_gaussian_log_prob(y, loc + h, 0.5, -1.0, 1.0)
                   - mpg.clipped_gaussian_log_prob(y, loc - h, 0.5, -1.0, 1.0)) / (2 * h)
        torch.testing.assert_close(closed, numeric, rtol=1e-6, atol=1e-7)


def test_capg_probabilities_sum_to_one():
    loc, scale, low, high = 0.4, 0.8, -1.0, 1.0
    inside, _ = integrate.quad(lambda y: math.exp(mpg.clipped_gaussian_log_prob(
        torch.tensor(y, dtype=F64), torch.tensor(loc, dtype=F64), scale, low, high).item()),
        low, high)
    atoms = sum(math.exp(mpg.clipped_gaussian_log_prob(torch.tensor(b, dtype=F64),
                torch.tensor(loc, dtype=F64), scale, low, high).item()) for b in (low, high))
    assert abs(inside + atoms - 1) < 1e-9


def test_policies_sample_the_same_actions_and_differ_only_in_log_prob():
    loc = torch.tensor([[0.3, -0.2], [1.0, 1.0]])
    std, mar = (mpg.DirectionalHead(0.5, 2, e)(loc) for e in ("standard", "marginal"))
    a1 = std.sample(generator=torch.Generator().manual_seed(3))
    a2 = mar.sample(generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a1, a2)
    torch.testing.assert_close(mar.env_action(a1).norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(std.log_prob(a1), torch.distributions.Normal(loc, 0.5)
                               .log_prob(a1).sum(-1))
    torch.testing.assert_close(mar.log_prob(a1), mpg.angular_gaussian_log_prob(
        a1 / a1.norm(dim=-1, keepdim=True), loc, 0.5))
    clip = mpg.ClippedHead(0.5, -1.0, 1.0, loc_dim=2)(loc)
    a = torch.tensor([[-3.0, 0.5], [2.0, 0.9]])
    torch.testing.assert_close(clip.env_action(a), torch.tensor([[-1.0, 0.5], [1.0, 0.9]]))
    # the score_loc shortcuts equal autograd of log_prob
    for head in (mpg.DirectionalHead(0.5, 2, "marginal"), mpg.DirectionalHead(0.5, 2, "standard"),
                 mpg.ClippedHead(0.5, -1.0, 1.0, 2, "marginal")):
        m = loc.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(head(m).log_prob(a).sum(), m)
        torch.testing.assert_close(head(loc).score_loc(a), auto, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_both_directional_estimators_are_unbiased_and_the_ratio_tends_to_d_minus_1_over_d(d):
    small = mpg.directional_bandit(d, 0.05, 20_000, seed=0)
    large = mpg.directional_bandit(d, 1.0, 20_000, seed=0)
    for r in (small, large):  # means agree with the pathwise gradient within Monte Carlo error
        assert r["z_standard"] < 4.5 and r["z_marginal"] < 4.5
        assert 0 < r["variance_ratio"] < 1
    assert abs(small["variance_ratio"] - (d - 1) / d) < 0.03
    assert large["variance_ratio"] > small["variance_ratio"]


def test_a_wrong_score_is_caught_by_the_bandit_check():
    """The z-score check has teeth: the score with the public (d + 1) coefficient, d = 3."""
    d, sigma, n = 3, 1.0, 20_000
    gen = torch.Generator().manual_seed(0)
    loc = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    target = torch.tensor([0.5, math.sqrt(3) / 2, 0.0], dtype=F64)
    a = loc + sigma * torch.randn(n, d, generator=gen, dtype=F64)
    x = a / a.norm(dim=-1, keepdim=True)
    q = (x * target).sum(-1, keepdim=True)
    alpha = (x * loc).sum(-1, keepdim=True) / sigma
    m0 = torch.special.ndtr(alpha)
    m1 = alpha * m0 + torch.exp(-alpha**2 / 2) / math.sqrt(2 * math.pi)
    wrong_m2 = alpha * m1 + (d + 1) * m0
    wrong = q * ((alpha + (d - 1) * m1 / wrong_m2) * x / sigma - loc / sigma**2)
    right = q * mpg.angular_gaussian_score_isotropic(x, loc.expand_as(x), sigma)
    pathwise = (target - q * x) / a.norm(dim=-1, keepdim=True)

    def z(g):
        diff = g.mean(0) - pathwise.mean(0)
        return (diff.abs() / ((g.var(0) + pathwise.var(0)) / n).sqrt()).max().item()

    assert z(right) < 4.5 and z(wrong) > 10


def test_capg_is_unbiased_and_reduces_variance_only_where_actions_are_clipped():
    for loc in (-2.0, 0.0, 1.5):
        r = mpg.clipped_bandit(loc, 1.0, 20_000, seed=1)
        assert r["z_standard"] < 4.5 and r["z_marginal"] < 4.5
    outside = mpg.clipped_bandit(-2.0, 1.0, 20_000, seed=1)
    assert outside["clipped_fraction"] > 0.8 and outside["variance_ratio"] < 0.5
    inside = mpg.clipped_bandit(0.0, 0.2, 20_000, seed=1)  # nothing is clipped: same estimator
    assert inside["clipped_fraction"] == 0.0 and abs(inside["variance_ratio"] - 1) < 1e-12


def test_gradient_variance_probe_matches_per_sample_autograd():
    torch.manual_seed(0)
    actor = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.Tanh(),
                                torch.nn.Linear(5, 2)).double()
    states = torch.randn(2, 2, dtype=F64)
    k, sigma = 5, 0.4
    with torch.no_grad():
        actions = actor(states)[:, None] + sigma * torch.randn(2, k, 2, dtype=F64)
    adv = torch.randn(2, k, dtype=F64)
    got = mpg.estimator_gradient_variance(actor, states, actions, adv, sigma)
    for estimator, value in zip(("standard", "marginal"), got, strict=True):
        head = mpg.DirectionalHead(sigma, 2, estimator)
        per_state = []
        for i in range(2):
            grads = []
            for j in range(k):
                actor.zero_grad()
                (adv[i, j] * head(actor(states[i:i + 1])).log_prob(actions[i, j][None])).sum() \
                    .backward()
                grads.append(torch.cat([p.grad.flatten() for p in actor.parameters()]))
            per_state.append(torch.stack(grads).var(0).sum())
        assert abs(torch.stack(per_state).mean().item() - value) < 1e-9 * (1 + value)


def test_configs_and_methods_reject_unknown_names():
    with pytest.raises(ValueError, match="valid scales"):
        mpg.CONFIGS["huge"]
    with pytest.raises(ValueError, match="valid knobs"):
        mpg.CONFIGS.get("smoke", sigmaa=0.2)
    with pytest.raises(ValueError, match="valid ones are APG, Gaussian, angle"):
        mpg.platform_head("PPO", 0.3, 0.3)
    with pytest.raises(ValueError, match="valid ones are CAPG"):
        mpg.train_control(mpg.CONFIGS["smoke"], "DDPG")


def test_platform_run_at_smoke_scale_records_episodes_and_variance_ratios(tmp_path):
    from lib.core import ArtifactCache

    cfg = mpg.CONFIGS.get("smoke", updates=20, variance_points=2)
    cache = ArtifactCache(tmp_path)
    run = mpg.platform_run(cfg, "APG", 0, cache, show_progress=False)
    assert mpg.platform_is_cached(cfg, "APG", 0, cache)
    assert len(run["returns"]) == len(run["env_steps"]) > 0
    assert [p["update"] for p in run["variance"]] == [0, 10]
    for p in run["variance"]:
        assert 0 < p["ratio"] < 1 and 0 < p["ratio_loc_space"] < 1
    again = mpg.platform_run(cfg, "APG", 0, cache)
    torch.testing.assert_close(again["returns"], run["returns"])


def test_control_run_path_on_pendulum_runs():
    cfg = mpg.CONFIGS.get("smoke", control_updates=3, control_n_envs=2)
    for method in mpg.CONTROL_METHODS:
        out = mpg.train_control(cfg, method, 0, show_progress=False)
        assert out["total_env_steps"] == 3 * 2 * cfg.n_steps
