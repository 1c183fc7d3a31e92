"""GAN Slimming: the generator's parts, the extraction, the quantizers, the GS step."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lib.core import with_knobs
from lib.energy.counts import layer_costs, total_macs
from lib.papers.gan_slimming.experiment import magnitude_prune_to_macs
from lib.papers.gan_slimming.method import (
    GSKnobs,
    GSState,
    compression_ratio,
    distillation_loss,
    gs_step,
    quantize_generator,
)
from lib.sparse.projections import soft_threshold
from lib.vision.cartoon import PHOTO_SPLITS, SCENE_SPLITS, cartoon_crops
from lib.vision.gan import (
    ActivationQuantizer,
    GeneratorWidths,
    ResnetGenerator,
    extract_slim_generator,
    feature_network,
    gamma_parameters,
    gates,
    generator_macs,
    lsgan_loss,
    patch_discriminator,
    resnet_generator,
)


def _random_gates(gen, seed=0, keep=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for gate in gates(gen).values():
            gate.gamma.copy_(torch.randn(gate.gamma.shape, generator=g)
                             * (torch.rand(gate.gamma.shape, generator=g) < keep))
            gate.shift.copy_(torch.randn(gate.shift.shape, generator=g))


def test_soft_threshold_is_the_exact_prox_of_the_l1_norm():
    # brute force: argmin_z 0.5 (z - v)^2 + lam |z| over a fine grid
    grid = np.linspace(-3, 3, 60001)
    for v in (-2.0, -0.3, 0.0, 0.2, 1.7):
        for lam in (0.0, 0.25, 0.5):
            z = grid[np.argmin(0.5 * (grid - v) ** 2 + lam * np.abs(grid))]
            assert float(soft_threshold(torch.tensor(v), lam)) == pytest.approx(z, abs=1e-4)


@pytest.mark.parametrize("skip", [False, True])
def test_extracted_generator_is_smaller_and_computes_the_masked_output(skip):
    torch.manual_seed(0)
    gen = resnet_generator(8, 3, input_skip=skip)
    _random_gates(gen)
    with torch.no_grad():  # one stream channel alive in a block output only
        gen.down2_norm.gamma[:] = 0.0
        for b in gen.blocks:
            b.norm2.gamma[:] = 0.0
        gen.blocks[1].norm2.gamma[3] = 1.5
    quantize_generator(gen, 8)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    slim = extract_slim_generator(gen)
    assert slim.widths.c3 == 1  # the stream keeps the union of its gates: one channel
    assert sum(p.numel() for p in slim.parameters()) < sum(p.numel() for p in gen.parameters())
    assert torch.allclose(slim(x), gen(x), atol=1e-6)
    # the count of channels kept per width follows the nonzero gammas
    assert slim.widths.c1 == int((gen.stem_norm.gamma != 0).sum())
    assert slim.widths.inner[2] == int((gen.blocks[2].norm1.gamma != 0).sum())
    assert slim.widths.u1 == int((gen.up1_norm.gamma != 0).sum())


def test_quantized_generator_weights_take_at_most_256_values_per_layer():
    gen = resnet_generator(8, 2)
    quantize_generator(gen, 8)
    for m in gen.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            w = m.weight.detach()
            assert torch.unique(w).numel() <= 2 ** 8
            step = w.abs().max() / 127  # signed grid, scale max|W| / 127
            assert torch.allclose(w / step, torch.round(w / step), atol=1e-3)


def test_activation_quantizer_gradient_is_zero_outside_its_range():
    q = ActivationQuantizer(8, 4.0)
    x = torch.tensor([-1.0, -0.01, 0.5, 2.0, 3.9, 4.2, 9.0], requires_grad=True)
    y = q(x)
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert float(y[5].detach()) == pytest.approx(4.0) and float(y[0].detach()) == 0.0
    assert torch.allclose(y[2], torch.round(x[2] / (4 / 255)) * (4 / 255))
    assert ActivationQuantizer(0)(x) is x  # off


def _state(rho, beta=1.0, gan=1.0, seed=0):
    torch.manual_seed(seed)
    teacher = resnet_generator(4, 1).eval()
    student = copy.deepcopy(teacher).train()
    quantize_generator(student, 8)
    knobs = GSKnobs(lr_w=1e-3, lr_gamma=0.1, lr_d=1e-3, rho=rho, beta=beta, gan=gan)
    return teacher, GSState(student, patch_discriminator(8, 1), knobs, pool_size=4, seed=0)


def test_gs_step_moves_gamma_by_sgd_then_the_exact_soft_threshold():
    rho = 0.5
    teacher, state = _state(rho)
    feats = feature_network(0, width=4, depth=2)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    # the smooth part's gradient in gamma, computed on copies
    s2, d2 = copy.deepcopy(state.student), copy.deepcopy(state.disc)
    with torch.no_grad():
        t = teacher(x)
    out = s2(x)
    loss = lsgan_loss(d2(out), True) + distillation_loss(out, t, feats, 1.0)
    grads = torch.autograd.grad(loss, gamma_parameters(s2))
    before = [g.detach().clone() for g in gamma_parameters(state.student)]
    gs_step(state, teacher, x, feats)
    lr = state.knobs.lr_gamma
    for g, g0, dg in zip(gamma_parameters(state.student), before, grads, strict=True):
        expect = soft_threshold(g0 - lr * dg, rho * lr)
        assert torch.allclose(g.detach(), expect, atol=1e-6)
    # the threshold (0.05 per step) zeroes nothing at gamma = 1; many steps must
    for _ in range(25):
        gs_step(state, teacher, x, feats)
    zero = torch.cat([g.detach() == 0 for g in gamma_parameters(state.student)])
    assert zero.float().mean() > 0.5


def test_gs_without_the_prox_leaves_no_channel_at_zero():
    teacher, state = _state(rho=0.0)
    feats = feature_network(0, width=4, depth=2)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    for _ in range(5):
        gs_step(state, teacher, x, feats)
    assert all(bool((g != 0).all()) for g in gamma_parameters(state.student))


def test_each_loss_term_reaches_the_weights():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    feats = feature_network(0, width=4, depth=2)

    def step(beta, gan):
        teacher, state = _state(0.0, beta=beta, gan=gan)
        with torch.no_grad():  # a student away from the teacher, so L_dist has a gradient
            state.student.head.bias.add_(0.3)
        info = gs_step(state, teacher, x, feats)
        return info, state.student.head.bias.grad.clone()  # Adam's step hides its scale

    both, w_both = step(1.0, 1.0)
    no_dist, w_nd = step(0.0, 1.0)
    no_gan, w_ng = step(1.0, 0.0)
    assert both["loss_dist"] > 0 and no_dist["loss_dist"] == 0 and no_gan["loss_gan"] == 0
    assert not torch.allclose(w_both, w_nd) and not torch.allclose(w_both, w_ng)


def test_distillation_loss_gradient_matches_finite_differences():
    torch.manual_seed(0)
    feats = feature_network(0, width=4, depth=2).double()
    t = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    s = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: distillation_loss(z, t, feats, 1.0), (s,))


def test_generator_macs_closed_form_matches_the_hook_count_and_a_hand_count():
    w = GeneratorWidths(c1=2, c2=3, c3=4, inner=(5,), u1=3, u2=2)
    gen = ResnetGenerator(w)
    x = torch.zeros(1, 3, 8, 8)
    by_hand = (3 * 2 * 49 * 64          # stem 7x7 at 8x8
               + 2 * 3 * 9 * 16         # down1 at 4x4
               + 3 * 4 * 9 * 4          # down2 at 2x2
               + 4 * 5 * 9 * 4 * 2      # the block's two 3x3 convolutions at 2x2
               + 4 * 3 * 9 * 4          # up1: per input position (2x2)
               + 3 * 2 * 9 * 16         # up2: per input position (4x4)
               + 2 * 3 * 49 * 64)       # head
    assert generator_macs(w, 8) == by_hand == total_macs(layer_costs(gen, x))
    with FlopCounterMode(display=False) as counter:  # torch's count, transposed convs too
        gen(x)
    assert counter.get_total_flops() == 2 * by_hand
    dense = GeneratorWidths.dense(4, 1)
    assert compression_ratio(generator_macs(dense, 8), by_hand, 8) == pytest.approx(
        32 * generator_macs(dense, 8) / (8 * by_hand))


def test_sequential_magnitude_pruning_meets_the_macs_and_drops_the_smallest():
    torch.manual_seed(0)
    gen = resnet_generator(8, 2)
    _random_gates(gen, keep=1.0)
    before = {k: g.gamma.detach().abs().clone() for k, g in gates(gen).items()}
    dense = generator_macs(gen.widths, 32)
    magnitude_prune_to_macs(gen, dense // 3, 32)
    slim = extract_slim_generator(gen)
    assert generator_macs(slim.widths, 32) <= dense // 3
    removed_any = False
    for name, g in gates(gen).items():
        if name == "down2" or name.endswith(".out"):
            continue  # stream channels go by their largest gate
        cut = g.gamma.detach() == 0
        if cut.any() and (~cut).any():  # within a layer, the global threshold is a threshold
            removed_any = True
            assert float(before[name][cut].max()) <= float(before[name][~cut].min())
    assert removed_any


def test_cartoon_pairs_are_deterministic_and_splits_disjoint():
    a = cartoon_crops("test", 6, 16, 48, seed=3)
    b = cartoon_crops("test", 6, 16, 48, seed=3)
    assert torch.equal(a.photo, b.photo) and torch.equal(a.cartoon, b.cartoon)
    assert a.photo.shape == (6, 3, 16, 16) and -1 <= float(a.cartoon.min()) <= 1
    assert not torch.equal(a.photo, a.cartoon)
    for s, t in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not set(PHOTO_SPLITS[s]) & set(PHOTO_SPLITS[t])
        assert not set(SCENE_SPLITS[s]) & set(SCENE_SPLITS[t])


def test_distillation_loss_is_pixel_l1_plus_feature_and_gram_distances():
    torch.manual_seed(1)
    feats = feature_network(0, width=4, depth=2)
    s, t = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    expect = (s - t).abs().mean()
    fs, ft = s, t
    for layer in feats:
        fs, ft = layer(fs), layer(ft)
        if isinstance(layer, nn.ReLU):
            n, c, h, w = fs.shape
            gs_, gt_ = (f.reshape(n, c, h * w) for f in (fs, ft))
            gram_s = gs_ @ gs_.transpose(1, 2) / (c * h * w)
            gram_t = gt_ @ gt_.transpose(1, 2) / (c * h * w)
            expect = expect + ((fs - ft) ** 2).mean() + 0.5 * ((gram_s - gram_t) ** 2).mean()
    assert float(distillation_loss(s, t, feats, 0.5)) == pytest.approx(float(expect), rel=1e-5)


# --------------------------------------------------------------------------- matched budgets
@pytest.mark.parametrize("ratio", [8.0, 16.0, 32.0])
def test_budget_cut_lands_within_a_few_percent_of_the_target_ratio(ratio):
    from lib.papers.gan_slimming.experiment import CONFIGS, budget_macs

    cfg = CONFIGS["tutorial"]
    torch.manual_seed(1)
    gen = resnet_generator(cfg.ngf, cfg.n_blocks, input_skip=True)
    _random_gates(gen, keep=1.0)
    dense = generator_macs(gen.widths, cfg.crop)
    magnitude_prune_to_macs(gen, budget_macs(cfg, dense, ratio), cfg.crop)
    slim = extract_slim_generator(gen)
    got = compression_ratio(dense, generator_macs(slim.widths, cfg.crop), cfg.bits)
    assert ratio <= got <= ratio * 1.06


def test_budget_cut_does_not_cut_a_generator_already_under_budget():
    # a generator the l1 term slimmed below the budget keeps all its nonzero channels
    torch.manual_seed(2)
    gen = resnet_generator(8, 3)
    _random_gates(gen, keep=0.5)
    before = [g.gamma.detach().clone() for g in gates(gen).values()]
    slim_macs = generator_macs(extract_slim_generator(gen).widths, 32)
    magnitude_prune_to_macs(gen, slim_macs, 32)
    for b, g in zip(before, gates(gen).values(), strict=True):
        assert torch.equal(b, g.gamma.detach())


# --------------------------------------------------------------------------- FID / KID
class _Flat(nn.Module):
    num_features = 3

    def forward(self, x):
        return x.flatten(1).double()


def _gaussian_images(n, mean, std, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g, dtype=torch.float64)
    x01 = torch.tensor(mean, dtype=torch.float64) + z * torch.tensor(std, dtype=torch.float64)
    return (x01 * 2 - 1).float().view(n, 3, 1, 1)  # fid_kid takes images in [-1, 1]


def test_fid_matches_the_frechet_distance_of_the_feature_gaussians():
    from scipy.linalg import sqrtm

    from lib.papers.gan_slimming.quality import fid_kid

    mu1, s1, mu2, s2 = [0.5, 0.4, 0.6], [0.05, 0.08, 0.1], [0.55, 0.4, 0.5], [0.1, 0.08, 0.05]
    real, fake = _gaussian_images(20000, mu1, s1, 0), _gaussian_images(20000, mu2, s2, 1)
    got = fid_kid(_Flat(), real, fake, subset_size=100, subsets=2)["fid"]
    # exact: the Frechet distance of the samples' own means and covariances
    a = ((real.double() + 1) / 2).flatten(1).numpy()
    b = ((fake.double() + 1) / 2).flatten(1).numpy()
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    exact = (((a.mean(0) - b.mean(0)) ** 2).sum()
             + np.trace(ca + cb - 2 * np.real(sqrtm(ca @ cb))))
    assert got == pytest.approx(exact, rel=1e-3)
    # population closed form for diagonal Gaussians: |mu1 - mu2|^2 + sum (s1 - s2)^2
    closed = sum((x - y) ** 2 for x, y in zip(mu1, mu2, strict=True)) + sum(
        (x - y) ** 2 for x, y in zip(s1, s2, strict=True))
    assert got == pytest.approx(closed, rel=0.05)


def test_kid_matches_the_unbiased_polynomial_kernel_mmd():
    from lib.papers.gan_slimming.quality import fid_kid

    real = _gaussian_images(60, [0.5] * 3, [0.1] * 3, 2)
    fake = _gaussian_images(60, [0.6, 0.5, 0.4], [0.1] * 3, 3)
    got = fid_kid(_Flat(), real, fake, subset_size=60, subsets=1)["kid"]
    x = ((real.double() + 1) / 2).flatten(1)
    y = ((fake.double() + 1) / 2).flatten(1)

    def k(a, b):
        return (a @ b.T / a.shape[1] + 1) ** 3

    m = len(x)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    mmd = ((kxx.sum() - kxx.diag().sum()) / (m * (m - 1))
           + (kyy.sum() - kyy.diag().sum()) / (m * (m - 1)) - 2 * kxy.mean())
    assert got == pytest.approx(float(mmd), rel=1e-4, abs=1e-9)


def test_the_feature_classifier_learns_cartoon_from_photo():
    from lib.papers.gan_slimming.quality import train_classifier

    c = cartoon_crops("train", 128, 32, 96, 0)
    trained = train_classifier(c.photo, c.cartoon, 8, 3, 250, 0)
    untrained = train_classifier(c.photo, c.cartoon, 8, 3, 0, 0)
    assert trained["train_accuracy"] >= 0.75
    assert trained["train_accuracy"] > untrained["train_accuracy"] + 0.2


def test_the_trained_perceptual_network_is_the_one_gs_uses():
    # the chapter's perceptual loss runs on the trained body, not the fixed random network
    from lib.papers.gan_slimming.experiment import CONFIGS, perceptual_network
    from lib.papers.gan_slimming.quality import conv_body

    cfg = with_knobs(CONFIGS["smoke"], perceptual_steps=5)

    class _Task:
        train = cartoon_crops("train", 16, 32, 96, 0).photo
        train_target = cartoon_crops("train", 16, 32, 96, 0).cartoon

    import tempfile

    from lib.core import ArtifactCache

    with tempfile.TemporaryDirectory() as d:
        net = perceptual_network(cfg, _Task, "cpu", ArtifactCache(d))
    rnd = feature_network(cfg.feature_seed)
    assert type(net) is type(conv_body(16, 3))
    assert not torch.equal(net[0].weight, rnd[0].weight)
    assert all(not p.requires_grad for p in net.parameters())


def test_quality_controls_say_whether_fid_ranks_the_teacher_first():
    """An FID that scores the untrained generator better than the teacher fails its control."""
    from lib.papers.gan_slimming import quality_controls

    refs = {"teacher": {"fid": 55.0, "fid_teacher": 0.0},
            "blurred teacher": {"fid": 67.7, "fid_teacher": 2.2},
            "untrained": {"fid": 43.8, "fid_teacher": 34.0}}
    assert quality_controls({"references": refs}) == {"fid": False, "fid_teacher": True}
    refs["untrained"]["fid"] = 80.0
    assert quality_controls({"references": refs})["fid"] is True
    assert quality_controls({}) == {}


def test_convergence_compares_midway_and_end_of_the_last_phase():
    from lib.papers.gan_slimming.experiment import CONFIGS, convergence

    cfg = with_knobs(CONFIGS["smoke"], gs_steps=100, finetune_steps=40)
    gs_curve = [{"step": s, "dev_distance": d} for s, d in
                ((50, 9.0), (100, 8.0), (110, 0.5), (120, 0.4), (130, 0.35), (140, 0.3))]
    seq_curve = [{"step": s, "dev_distance": 1.0 - s / 1000} for s in range(10, 141, 10)]
    runs = [{"method": "gs", "target_ratio": 16.0, "seed": 0, "curve": gs_curve},
            {"method": "sequential", "target_ratio": 16.0, "seed": 0, "curve": seq_curve},
            {"method": "sequential", "target_ratio": 8.0, "seed": 0, "curve": gs_curve}]
    rows = {r["method"]: r for r in convergence(runs, cfg)}
    assert rows["gs"]["midway"] == 0.4 and rows["gs"]["end"] == 0.3   # fine-tune: 100..140
    assert rows["gs"]["relative_change"] == pytest.approx(0.3 / 0.4 - 1)
    assert rows["sequential"]["midway"] == pytest.approx(0.93)         # all 140 steps
    assert rows["sequential"]["end"] == pytest.approx(0.86) and rows["sequential"]["seeds"] == 1


def test_convergence_survives_a_capped_dry_run(monkeypatch):
    from lib.core.limits import STEP_LIMIT_ENV
    from lib.papers.gan_slimming.experiment import CONFIGS, convergence

    cfg = CONFIGS["full"]  # 200 000 + 50 000 steps configured, 1 + 1 run
    curve = [{"step": 1, "dev_distance": 0.5}, {"step": 2, "dev_distance": 0.4}]
    monkeypatch.setenv(STEP_LIMIT_ENV, "1")
    rows = convergence([{"method": "gs", "target_ratio": cfg.ablation_ratio, "seed": 0,
                         "curve": curve}], cfg)
    assert rows[0]["end"] == 0.4
