"""lib.rl.angular and lib.rl.clipped (the densities of marginal policy gradients) against
quadrature, numerical derivatives, 50-digit mpmath and scipy."""

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import integrate, stats

from lib.rl import angular, clipped, policies

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
    got = angular.log_m(torch.tensor(ALPHAS, dtype=F64), k)
    want = torch.tensor([_mp_log_m(a, k) for a in ALPHAS], dtype=F64)
    assert torch.all(torch.isfinite(got))
    torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("k", [5, 8, 16, 32, 49, 64, 100])
def test_log_m_is_accurate_at_large_k_on_both_sides_of_the_split(k):
    """The forward recursion's error grows like exp(2 |alpha| sqrt(k)): a fixed split at
    alpha = -3 lost 2e-2 at k = 49 and gave NaN beyond. Check alpha just above and below the
    k-dependent split, and through [-4, 0] where the two methods hand over."""
    split = angular.forward_threshold(k)
    alphas = sorted({*np.linspace(-4.0, 0.5, 19).tolist(), split - 1e-9, split + 1e-9,
                     split - 0.2, split + 0.2, -40.0, 30.0})
    got = angular.log_m(torch.tensor(alphas, dtype=F64), k)
    want = torch.tensor([_mp_log_m(a, k) for a in alphas], dtype=F64)
    assert torch.all(torch.isfinite(got))
    err = (got - want).abs() / want.abs().clamp(min=1.0)  # relative error of M_k near 0
    assert err.max().item() < 1e-11, f"worst at alpha={alphas[int(err.argmax())]}"


def test_m_ratio_matches_mpmath_at_large_k():
    alpha = torch.tensor([-3.0, -1.0, -0.5, 0.0, 2.0], dtype=F64)
    want = torch.tensor([math.exp(_mp_log_m(a, 48) - _mp_log_m(a, 49)) for a in alpha.tolist()],
                        dtype=F64)
    torch.testing.assert_close(angular.m_ratio(alpha, 49), want, rtol=1e-11, atol=0)


def test_plain_recursion_agrees_where_it_is_accurate_and_log_m_derivative_is_k_ratio():
    alpha = torch.linspace(-2.5, 6.0, 41, dtype=F64)
    plain = angular.m_functions(alpha, 4)
    for k in range(5):
        torch.testing.assert_close(angular.log_m(alpha, k), plain[k].log(), rtol=1e-10, atol=1e-10)
    # M_k' = k M_{k-1}: autograd of log M_k equals k M_{k-1} / M_k, here by central differences
    a = alpha.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(angular.log_m(a, 3).sum(), a)
    h = 1e-6
    numeric = (angular.log_m(alpha + h, 3) - angular.log_m(alpha - h, 3)) / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(grad, 3 * plain[2] / plain[3], rtol=1e-10, atol=1e-12)


def test_log_m_gradcheck_across_the_split():
    alpha = torch.tensor([-50.0, -3.2, -2.8, 0.3, 8.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: angular.log_m(a, 4), (alpha,))


def test_m_ratio_rejects_k0_and_orders_are_checked():
    with pytest.raises(ValueError, match="k >= 1"):
        angular.m_ratio(torch.zeros(1), 0)
    with pytest.raises(ValueError, match="non-negative int"):
        angular.log_m(torch.zeros(1), -1)


@pytest.mark.parametrize("scale", [0.05, 0.5, 2.0, 20.0])
def test_density_integrates_to_one_on_the_circle(scale):
    n = 4000
    theta = torch.arange(n, dtype=F64) * (2 * math.pi / n)  # trapezoid = exact for periodic
    x = torch.stack([theta.cos(), theta.sin()], -1)
    loc = torch.tensor([0.8, -0.3], dtype=F64)
    mass = angular.angular_gaussian_log_prob(x, loc, scale).exp().sum() * (2 * math.pi / n)
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
    dens = angular.angular_gaussian_log_prob(x, loc, scale).exp().numpy()
    mass = (dens * weights[:, None]).sum() * (2 * math.pi / 240)
    assert abs(mass - 1) < 1e-8


def test_general_covariance_density_integrates_to_one_and_matches_isotropic():
    n = 4000
    theta = torch.arange(n, dtype=F64) * (2 * math.pi / n)
    x = torch.stack([theta.cos(), theta.sin()], -1)
    loc = torch.tensor([0.5, 0.4], dtype=F64)
    cov = torch.tensor([[0.3, 0.12], [0.12, 0.08]], dtype=F64)
    mass = angular.angular_gaussian_log_prob(x, loc, covariance=cov).exp().sum() * (2 * math.pi / n)
    assert abs(mass.item() - 1) < 1e-9
    iso = angular.angular_gaussian_log_prob(x, loc, covariance=0.49 * torch.eye(2, dtype=F64))
    torch.testing.assert_close(iso, angular.angular_gaussian_log_prob(x, loc, 0.7))


def test_density_matches_the_histogram_of_sampled_directions():
    dist = angular.AngularGaussian(torch.tensor([0.6, 0.2]), scale=0.8)
    x = dist.sample((200_000,), generator=torch.Generator().manual_seed(0)).double()
    theta = torch.atan2(x[:, 1], x[:, 0]).numpy()
    hist, edges = np.histogram(theta, bins=24, range=(-math.pi, math.pi), density=True)
    centers = torch.tensor((edges[:-1] + edges[1:]) / 2, dtype=F64)
    dens = angular.angular_gaussian_log_prob(torch.stack([centers.cos(), centers.sin()], -1),
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
        numeric = _numeric_grad(lambda m, x=x: angular.angular_gaussian_log_prob(x, m, scale), loc)
        closed = angular.angular_gaussian_score_isotropic(x, loc, scale)
        m = loc.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(angular.angular_gaussian_log_prob(x, m, scale), m)
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
    g_mu, g_sigma = angular.angular_gaussian_score(x, loc, cov)
    num_mu = _numeric_grad(lambda m: angular.angular_gaussian_log_prob(x, m, covariance=cov), loc)
    assert (g_mu - num_mu).abs().max().item() < 1e-6 * (1 + num_mu.abs().max().item())
    h = 1e-6
    for i in range(d):
        for j in range(i, d):
            e = torch.zeros(d, d, dtype=F64)
            e[i, j] = e[j, i] = 1.0
            log_f = angular.angular_gaussian_log_prob
            numeric = (log_f(x, loc, covariance=cov + h * e)
                       - log_f(x, loc, covariance=cov - h * e)) / (2 * h)
            closed = (g_sigma * e).sum()  # tr(G E) for symmetric E
            assert abs(closed.item() - numeric.item()) < 1e-6 * (1 + abs(numeric.item()))


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="unit vectors"):
        angular.angular_gaussian_log_prob(torch.tensor([1.0, 1.0]), torch.zeros(2), 1.0)
    with pytest.raises(ValueError, match="exactly one"):
        angular.angular_gaussian_log_prob(torch.tensor([1.0, 0.0]), torch.zeros(2))
    with pytest.raises(ValueError, match="positive"):
        angular.AngularGaussian(torch.zeros(2), scale=-1.0)
    with pytest.raises(ValueError, match="low < high"):
        clipped.clipped_gaussian_log_prob(torch.zeros(1), torch.zeros(1), 1.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="valid ones are standard, marginal"):
        policies.DirectionalHead(scale=0.5, estimator="mpg")


def test_capg_log_prob_matches_scipy_at_the_bounds_and_inside():
    loc = torch.tensor([-2.0, -0.3, 0.0, 0.9, 3.0, 30.0], dtype=F64)
    scale, low, high = 0.7, -1.0, 1.0
    for y_value in (low, -0.25, 0.6, high, -5.0, 5.0):
        y = torch.full_like(loc, y_value)
        got = clipped.clipped_gaussian_log_prob(y, loc, scale, low, high).numpy()
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
        closed = clipped.clipped_gaussian_score_loc(y, loc, 0.5, -1.0, 1.0)
        h = 1e-6
        numeric = (clipped.clipped_gaussian_log_prob(y, loc + h, 0.5, -1.0, 1.0)
                   - clipped.clipped_gaussian_log_prob(y, loc - h, 0.5, -1.0, 1.0)) / (2 * h)
        torch.testing.assert_close(closed, numeric, rtol=1e-6, atol=1e-7)


def test_capg_probabilities_sum_to_one():
    loc, scale, low, high = 0.4, 0.8, -1.0, 1.0
    inside, _ = integrate.quad(lambda y: math.exp(clipped.clipped_gaussian_log_prob(
        torch.tensor(y, dtype=F64), torch.tensor(loc, dtype=F64), scale, low, high).item()),
        low, high)
    atoms = sum(math.exp(clipped.clipped_gaussian_log_prob(torch.tensor(b, dtype=F64),
                torch.tensor(loc, dtype=F64), scale, low, high).item()) for b in (low, high))
    assert abs(inside + atoms - 1) < 1e-9


