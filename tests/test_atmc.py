"""ATMC: the attacks against closed forms and brute force (vertex enumeration, grid
search), the compressed model's budget
and codebooks, and the adversarial training really training on attacked inputs."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from lib.papers.atmc import CONFIGS, task
from lib.papers.atmc.method import (
    ATMCKnobs,
    budget_for,
    compress_adversarially,
    compressed_tensors,
    dense_size,
    factorize,
    size_report,
)
from lib.vision.attacks import (
    PGDConfig,
    adversarial_loss,
    fgsm,
    pgd,
    pgd_generator,
    robust_correct,
)


def _linear_model(seed=0, d=12):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, 2))
    return model


def _blobs(n=400, seed=0):
    """Two classes of 1x4x4 images in [0, 1] separable by their mean brightness."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = (0.42 + 0.16 * y.float()).view(-1, 1, 1, 1) + 0.12 * torch.randn(n, 1, 4, 4, generator=g)
    return x.clamp(0, 1), y


def _trained_cnn():
    x, y = _blobs(600)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, x, y


# ----------------------------------------------------------------------------- attacks
def test_fgsm_and_pgd_match_the_closed_form_on_a_linear_model():
    """For logits ``W x``, the loss rises along ``w_other - w_true``: the worst l_inf
    perturbation (away from the box edges) is ``eps sign(w_other - w_true)``."""
    model = _linear_model(d=16)
    x = torch.full((5, 1, 4, 4), 0.5)
    y = torch.tensor([0, 1, 0, 1, 0])
    eps = 0.1
    w = model[1].weight.detach()
    direction = torch.stack([(w[1 - c] - w[c]).sign() for c in y.tolist()]).view_as(x)
    assert torch.allclose(fgsm(model, x, y, eps) - x, eps * direction, atol=1e-6)
    x_pgd = pgd(model, x, y, PGDConfig(eps=eps, steps=20), pgd_generator(0))
    assert torch.allclose(x_pgd - x, eps * direction, atol=1e-6)


def test_perturbations_stay_within_eps_and_the_pixel_box():
    model, x, y = _trained_cnn()
    x = x.clone()
    x[:10] = 0.0  # on the box edge: the clip must act
    x[10:20] = 1.0
    for x_adv in (fgsm(model, x, y, 0.2),
                  pgd(model, x, y, PGDConfig(eps=0.2, steps=5, restarts=2), pgd_generator(1))):
        assert (x_adv - x).abs().max() <= 0.2 + 1e-6
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_pgd_is_at_most_fgsm_is_at_most_clean_and_accuracy_falls_with_eps():
    model, x, y = _trained_cnn()
    cfg = PGDConfig(eps=0.1, steps=10)
    acc = {a: robust_correct(model, x, y, a, cfg, seed=0).mean().item()
           for a in ("clean", "fgsm", "pgd")}
    assert acc["clean"] > 0.9
    assert acc["pgd"] <= acc["fgsm"] <= acc["clean"]
    assert acc["pgd"] < acc["clean"] - 0.1  # the attack does something at this radius
    curve = [robust_correct(model, x, y, "pgd", PGDConfig(eps=e, steps=10), 0).mean().item()
             for e in (0.0, 0.05, 0.1, 0.15, 0.2)]
    assert curve[0] == acc["clean"]
    assert all(b <= a for a, b in zip(curve, curve[1:], strict=False))


def test_random_start_is_random_and_seeded():
    model, x, y = _trained_cnn()
    cfg = PGDConfig(eps=0.1, steps=0)  # zero steps: the random start itself
    a = pgd(model, x, y, cfg, pgd_generator(0))
    b = pgd(model, x, y, cfg, pgd_generator(0))
    c = pgd(model, x, y, cfg, pgd_generator(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a - x).abs().mean() > 0.03  # moved (uniform on [-eps, eps]: mean |d| = eps / 2)


def test_attack_restores_the_mode_and_leaves_parameter_gradients():
    model, x, y = _trained_cnn()
    model.zero_grad(set_to_none=True)
    model.train()
    pgd(model, x, y, PGDConfig(eps=0.1, steps=2), pgd_generator(0))
    assert model.training
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients made
    model.eval()
    fgsm(model, x, y, 0.1)
    assert not model.training
    assert all(p.requires_grad for p in model.parameters())


def _vertices(x, eps, bounds=(0.0, 1.0)):
    """Every vertex of ``{|x' - x|_inf <= eps} cap box`` of one flat input ``x`` (d values):
    the 2^d sign patterns, clipped (the intersection of two boxes is a box)."""
    d = x.numel()
    signs = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=d)))
    return (x.view(1, d) + eps * signs).clamp(*bounds)


def _loss(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def test_pgd_reaches_the_brute_force_optimum_of_a_convex_loss():
    """Oracle without a library: a 4-class linear model on 3-pixel inputs. Its cross-entropy
    is convex in ``x``, so the worst point of the eps-box (intersected with the pixel box)
    is one of its 8 vertices: enumerate them. PGD with restarts must reach that maximum (to
    1e-5) on every item and never exceed it (its point is feasible); FGSM never exceeds it
    either, and a no-op attack (the clean input) falls well short. Items near the pixel
    edges make the clip act. Fails if the attack ascends the wrong way, skips the
    projection, or does not move."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3, 4))
    g = torch.Generator().manual_seed(1)
    x = torch.rand(60, 1, 1, 3, generator=g)
    x[:10, ..., 0] = 0.02  # the clip acts on one side
    x[10:20, ..., 2] = 0.99
    y = torch.randint(0, 4, (60,), generator=g)
    eps = 0.15
    best = torch.stack([_loss(model, _vertices(x[i].flatten(), eps).view(-1, 1, 1, 3),
                              y[i].repeat(8)).max() for i in range(len(y))])
    x_pgd = pgd(model, x, y, PGDConfig(eps=eps, steps=20, restarts=3), pgd_generator(0))
    assert (x_pgd - x).abs().max() <= eps + 1e-6 and x_pgd.min() >= 0 and x_pgd.max() <= 1
    got = _loss(model, x_pgd, y)
    assert torch.all(got <= best + 1e-5)
    assert torch.allclose(got, best, atol=1e-5), (got - best).abs().max()
    assert torch.all(_loss(model, fgsm(model, x, y, eps), y) <= best + 1e-5)
    assert float((best - _loss(model, x, y)).min()) > 1e-3  # the no-op is far from it


def test_pgd_accuracy_matches_an_exhaustive_grid_search_on_a_nonlinear_model():
    """Oracle without a library on a non-convex case: a small tanh network on 2-pixel
    inputs, trained on a ring. For each item a 121 x 121 grid of the eps-box (clipped to
    the pixel box) is searched exhaustively for the highest loss and for any misclassified
    point. PGD's loss is at least the grid's best up to 0.01 on every item, and its
    accuracy is the grid's within 2 points (the grid's accuracy bounds the true robust
    accuracy from above; PGD's cannot go below the true one). A tanh network, not a ReLU
    one: a saturated ReLU network has flat regions where the input gradient is exactly
    zero, and there any gradient attack (ours, torchattacks') stays put while the grid
    does not (tried: 6 of 80 items)."""
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(800, 2, generator=g)
    lab = (((pts - 0.5) ** 2).sum(1) < 0.09).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32),
                          nn.Tanh(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(400):
        opt.zero_grad()
        F.cross_entropy(model(pts), lab).backward()
        opt.step()
    x, y = pts[:60].view(-1, 1, 1, 2), lab[:60]
    eps = 0.06
    assert (model(x).argmax(1) == y).float().mean() > 0.9
    t = torch.linspace(-eps, eps, 121)
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).view(-1, 1, 1, 2)
    grid_best, grid_robust = [], []
    for i in range(len(y)):
        cand = (x[i] + grid).clamp(0, 1)
        with torch.no_grad():
            logits = model(cand)
        yi = y[i].repeat(len(cand))
        grid_best.append(F.cross_entropy(logits, yi, reduction="none").max())
        grid_robust.append(bool((logits.argmax(1) == yi).all()))
    grid_best = torch.stack(grid_best)
    cfg = PGDConfig(eps=eps, steps=40, restarts=4)
    got = _loss(model, pgd(model, x, y, cfg, pgd_generator(0)), y)
    assert float((got - grid_best).min()) >= -0.01, float((got - grid_best).min())
    pgd_acc = robust_correct(model, x, y, "pgd", cfg, seed=0).mean().item()
    grid_acc = sum(grid_robust) / len(grid_robust)
    clean_acc = robust_correct(model, x, y, "clean", cfg).mean().item()
    assert grid_acc < clean_acc - 0.05  # the radius matters on this ring
    assert abs(pgd_acc - grid_acc) <= 0.02, (pgd_acc, grid_acc)


# ----------------------------------------------------------------------------- ATMC
def _tiny_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2))


def test_factorized_layer_reproduces_the_dense_layer_at_init():
    net = _tiny_net()
    x = torch.rand(3, 1, 4, 4)
    ref = net(x)
    factorize(net, rank_fraction=0.5)
    assert torch.allclose(net(x), ref, atol=1e-5)  # U V + C = W exactly (C = residual)
    alr = factorize(_tiny_net(), rank_fraction=1.0, sparse_part=False)
    assert torch.allclose(alr(x), ref, atol=1e-4)  # full rank, no C: the SVD itself


@pytest.mark.parametrize("bits", [32, 2])
def test_compressed_model_meets_its_budget_and_codebooks_exactly(bits):
    x, y = _blobs(256)
    net = factorize(_tiny_net(), 0.5)
    n_dense = dense_size(_tiny_net())
    budget = budget_for(0.5, bits, n_dense) if bits == 32 else 60
    knobs = ATMCKnobs(budget=budget, bits=bits, steps=12, batch_size=32, lr=0.05,
                      admm_every=3, attack=PGDConfig(eps=0.1, steps=2))
    compress_adversarially(net, {"x_train": x, "y_train": y}, knobs, seed=0)
    report = size_report(net, bits, n_dense)
    nnz = [int((t != 0).sum()) for t in compressed_tensors(net)]
    assert sum(nnz) == report["nonzeros"] <= budget
    assert sum(nnz) >= budget - 10  # the budget is used, not left idle
    assert report["size_ratio"] <= budget * min(bits, 32) / (n_dense * 32) + 1e-12
    if bits < 32:
        assert all(d <= 2 ** bits for d in report["distinct"]), report["distinct"]
        assert max(report["distinct"]) == 2 ** bits  # the codebook is used in full


def test_adversarial_loss_is_the_official_mix_on_attacked_inputs():
    model, x, y = _trained_cnn()
    cfg = PGDConfig(eps=0.1, steps=3)
    loss = adversarial_loss(model, x, y, cfg, pgd_generator(5))
    x_adv = pgd(model, x, y, cfg, pgd_generator(5))
    expected = 0.5 * F.cross_entropy(model(x), y) + 0.5 * F.cross_entropy(model(x_adv), y)
    assert torch.allclose(loss, expected)
    assert loss > F.cross_entropy(model(x), y) + 0.05  # not the clean loss


def test_adversarial_training_trains_on_attacked_inputs():
    """A hook records every batch the network sees in training mode: half of them must be
    perturbed (within eps, not zero) copies of the clean batch. Fails if the attack is
    dropped or run without effect."""
    x, y = _blobs(128)
    net = factorize(_tiny_net(), 0.5)
    seen = []
    net.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone())
                                  if m.training else None)
    knobs = ATMCKnobs(budget=200, bits=32, steps=3, batch_size=16, lr=0.01,
                      attack=PGDConfig(eps=0.1, steps=2))
    compress_adversarially(net, {"x_train": x, "y_train": y}, knobs, seed=0)
    assert len(seen) == 2 * knobs.steps
    # adversarial_loss calls f(x_adv), then f(x)
    for adv, clean in zip(seen[::2], seen[1::2], strict=True):
        delta = (adv - clean).abs()
        assert 0.01 < float(delta.max()) <= 0.1 + 1e-6


def test_nap_runs_no_attack():
    x, y = _blobs(64)
    net = _tiny_net()
    seen = []
    net.register_forward_pre_hook(lambda m, a: seen.append(1) if m.training else None)
    knobs = ATMCKnobs(budget=100, bits=32, steps=2, batch_size=16, lr=0.01, adv_weight=0.0)
    compress_adversarially(net, {"x_train": x, "y_train": y}, knobs, seed=0)
    assert len(seen) == 2


def test_admm_stage_pulls_towards_the_quantized_duplicate():
    """With the ADMM stage, the weights before the final hard quantization are nearer
    their quantized values than without it (rho = 0: no pull)."""
    x, y = _blobs(256)
    dists = {}
    for rho in (0.0, 50.0):
        net = factorize(_tiny_net(), 0.5)
        knobs = ATMCKnobs(budget=150, bits=2, steps=30, batch_size=32, lr=0.05, rho=rho,
                          admm_every=2, quant_fraction=1.0, attack=PGDConfig(eps=0.05, steps=1))
        from lib.papers.atmc import method

        captured = {}
        orig = method.finalize

        def spy(tensors, budget, bits, captured=captured, orig=orig):
            before = [t.detach().clone() for t in tensors]
            orig(tensors, budget, bits)
            captured["d"] = sum(float(((b - t.detach()) ** 2).sum())
                                for b, t in zip(before, tensors, strict=True))

        method.finalize = spy
        try:
            compress_adversarially(net, {"x_train": x, "y_train": y}, knobs, seed=0)
        finally:
            method.finalize = orig
        dists[rho] = captured["d"]
    assert dists[50.0] < 0.5 * dists[0.0], dists


def test_pixel_data_is_in_the_unit_box():
    cfg = CONFIGS["smoke"]
    data = task.pixel_data(cfg, 0)
    assert float(data["x_train"].min()) == 0.0 and float(data["x_train"].max()) == 1.0
    assert data["x_test"].min() >= 0 and data["x_test"].max() <= 1


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError):
        CONFIGS.get("smoke", methods=("ap", "atmc-9x"))


# ----------------------------------------------------------------------------- full-scale data
def test_cifar100_and_svhn_read_their_on_disk_formats(tmp_path):
    """The readers of the CIFAR-100 and SVHN setups on fixtures in the real formats: sizes,
    shapes, CIFAR-100's 100 fine labels, SVHN's label 10 read as the digit 0, and the
    chapter's in-memory [0, 1] tensors with the last n_dev training images as dev."""
    from lib.vision.datasets import vision_dataset
    from tests.fixtures.formats import write_cifar100, write_svhn

    write_cifar100(tmp_path, n_train=8, n_test=4)
    labels = write_svhn(tmp_path, n_train=10, n_test=4)
    c100 = vision_dataset("cifar100", True, tmp_path, verify=False)
    assert len(c100) == 8 and len(vision_dataset("cifar100", False, tmp_path, verify=False)) == 4
    assert len(c100.classes) == 100 and c100[0][0].shape == (3, 32, 32)
    svhn = vision_dataset("svhn", True, tmp_path, verify=False)
    assert len(svhn) == 10 and svhn[0][0].shape == (3, 32, 32)
    assert [int(svhn[i][1]) for i in range(10)] == [int(v) % 10 for v in labels["train"]]
    with pytest.raises(FileNotFoundError):  # the fixture has no published md5
        vision_dataset("svhn", True, tmp_path, verify=True)
    data = task._vision_tensors("svhn", str(tmp_path), 2, False)
    assert data["x_train"].shape == (8, 3, 32, 32) and data["x_dev"].shape == (2, 3, 32, 32)
    assert 0.0 <= float(data["x_train"].min()) and float(data["x_train"].max()) <= 1.0


@pytest.mark.parametrize("name", ["cifar100", "svhn"])
def test_missing_cifar100_or_svhn_names_the_fetch_command(tmp_path, name):
    from lib.vision.datasets import vision_dataset

    with pytest.raises(FileNotFoundError) as err:
        vision_dataset(name, True, tmp_path / "root")
    assert f"python data_scripts/fetch_vision.py {name} --root {tmp_path / 'root'}" in str(
        err.value)


def test_the_paper_setups_build_their_networks():
    from lib.papers.atmc import setup_config

    for setup, classes in (("cifar100-resnet34", 100), ("svhn-wrn16-4", 10)):
        cfg = setup_config("full", setup)
        data = {"x_train": torch.zeros(2, 3, 32, 32), "mean": torch.zeros(3),
                "std": torch.ones(3)}
        net = task.build_net(cfg, data)
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, classes)


# ----------------------------------------------------------------------------- tuning
def test_best_settings_picks_each_methods_lr_and_one_shared_budget():
    """The selection rule by hand: per method the lr of highest dev PGD (ties: clean), at
    the shared budget whose mean best PGD over methods is highest."""
    from lib.papers.atmc import best_settings

    rows = [
        {"method": "ap", "lr": 0.01, "steps": 80, "clean": 0.8, "pgd": 0.30},
        {"method": "ap", "lr": 0.03, "steps": 80, "clean": 0.7, "pgd": 0.35},
        {"method": "ap", "lr": 0.01, "steps": 160, "clean": 0.8, "pgd": 0.40},
        {"method": "ap", "lr": 0.03, "steps": 160, "clean": 0.9, "pgd": 0.40},
        {"method": "nap", "lr": 0.01, "steps": 80, "clean": 0.9, "pgd": 0.05},
        {"method": "nap", "lr": 0.03, "steps": 80, "clean": 0.9, "pgd": 0.02},
        {"method": "nap", "lr": 0.01, "steps": 160, "clean": 0.9, "pgd": 0.01},
        {"method": "nap", "lr": 0.03, "steps": 160, "clean": 0.9, "pgd": 0.03},
    ]
    best = best_settings(rows)
    # budget 80: mean(0.35, 0.05) = 0.20; budget 160: mean(0.40, 0.03) = 0.215
    assert best["steps"] == 160
    assert dict(best["method_lr"]) == {"ap": 0.03, "nap": 0.03}  # ap: tie on PGD, clean wins


def test_tuning_runs_on_the_dev_split_not_the_test_split():
    """tune evaluates on dev images: swapping the split for test changes its numbers."""
    from lib.core import ArtifactCache, with_knobs
    from lib.papers.atmc import compress, tune

    cfg = with_knobs(CONFIGS["smoke"], methods=("ap",), tune_lrs=(0.01,), steps=2, tune_steps=(),
                     tune_ratio=0.1, n_eval=60)
    cache = ArtifactCache()
    rows = tune(cfg, "cpu", cache)
    assert [(r["method"], r["lr"], r["steps"]) for r in rows] == [("ap", 0.01, 2)]
    dev = compress(cfg, "ap", 0.1, 0, torch.device("cpu"), cache, lr=0.01, steps=2,
                   split="dev")
    test = compress(cfg, "ap", 0.1, 0, torch.device("cpu"), cache, lr=0.01, steps=2)
    assert rows[0]["clean"] == float(dev["correct"]["clean"].mean())
    assert not torch.equal(dev["correct"]["clean"], test["correct"]["clean"])


def test_the_tutorial_uses_the_recorded_tuning():
    """The tutorial's learning rates are what the selection rule picks from the recorded
    dev grid, the grid is the same for every method (equal effort), and the verdict ratio
    is left to the rule (applied on dev inside ``run``)."""
    from lib.papers.atmc import METHODS, TUNING, VERDICT_RULE, best_settings

    cfg = CONFIGS["tutorial"]
    best = best_settings(TUNING["grid"])
    assert cfg.method_lr == best["method_lr"] and cfg.steps == best["steps"]
    grids = {m: sorted((r["lr"], r["steps"]) for r in TUNING["grid"] if r["method"] == m)
             for m in METHODS}
    assert all(g == grids["ap"] for g in grids.values()) and len(grids["ap"]) >= 4
    assert sorted(lr for lr, _ in grids["ap"]) == sorted(cfg.tune_lrs)
    assert cfg.verdict_rule == VERDICT_RULE and cfg.verdict_ratio == 0.0


def test_the_verdict_ratio_is_fixed_on_dev_runs_of_the_baselines_only(monkeypatch):
    """``verdict_ratio_on_dev`` compresses only AP and NAP, only on the dev split, at every
    ratio of the sweep, and picks the smallest ratio where both fit on dev: a rule that
    read the test split, or ATMC-8's accuracy, would pick another ratio here."""
    from lib.core import with_knobs
    from lib.papers.atmc import experiment

    cfg = with_knobs(CONFIGS["smoke"], ratios=(0.1, 0.01, 0.003), n_eval=50)
    dev_clean = {("ap", 0.1): 0.9, ("nap", 0.1): 0.9, ("ap", 0.01): 0.6,
                 ("nap", 0.01): 0.5, ("ap", 0.003): 0.15, ("nap", 0.003): 0.6}
    calls = []

    def fake(cfg_, method, ratio, seed, device, cache, *, lr=None, steps=None, split="test"):
        calls.append((method, ratio, split))
        acc = dev_clean[(method, ratio)] if split == "dev" else 0.95  # test: all fit
        return {"correct": {"clean": torch.full((50,), acc)}}

    monkeypatch.setattr(experiment, "compress", fake)
    monkeypatch.setattr(experiment, "pixel_data",
                        lambda *a, **k: {"y_dev": torch.arange(50) % 10})  # chance 0.1
    out = experiment.verdict_ratio_on_dev(cfg, torch.device("cpu"), None)
    assert {s for *_, s in calls} == {"dev"}
    assert sorted((m, q) for m, q, _ in calls) == sorted(dev_clean)
    assert out["dev_chance"] == pytest.approx(0.1)
    assert out["ratio"] == 0.01  # AP at 3e-3 (0.15) does not clear 0.1 + FIT_MARGIN


def test_best_settings_per_ratio_by_hand():
    from lib.papers.atmc import best_settings_per_ratio

    rows = [{"ratio": q, "method": "ap", "lr": lr, "steps": 80, "clean": 0.5, "pgd": p}
            for q, lr, p in ((0.1, 0.01, 0.3), (0.1, 0.1, 0.2), (0.01, 0.01, 0.1),
                             (0.01, 0.1, 0.2))]
    best = best_settings_per_ratio(rows)
    assert best["ratio_lr"] == (("ap", 0.1, 0.01), ("ap", 0.01, 0.1))
    assert best["dev"][("ap", 0.01)]["pgd"] == 0.2


def test_the_verdict_rule_by_hand():
    """The smallest ratio at which both baselines (AP, NAP) fit on dev; ATMC-8's dev
    accuracy does not move it; none fitting gives None."""
    from lib.papers.atmc import FIT_MARGIN, pick_verdict_ratio

    d = {("ap", 0.1): {"clean": 0.9}, ("nap", 0.1): {"clean": 0.9},
         ("ap", 0.01): {"clean": 0.5}, ("nap", 0.01): {"clean": 0.5},
         ("ap", 0.003): {"clean": 0.5}, ("nap", 0.003): {"clean": 0.1 + FIT_MARGIN},
         ("atmc-8", 0.003): {"clean": 0.9}}
    assert pick_verdict_ratio(d, chance=0.1) == 0.01  # NAP at 3e-3 sits on the bar: not fit
    d[("nap", 0.003)] = {"clean": 0.1 + FIT_MARGIN + 0.01}
    assert pick_verdict_ratio(d, chance=0.1) == 0.003
    assert pick_verdict_ratio(d, chance=0.95) is None


def test_lr_of_prefers_the_lr_tuned_at_the_ratio():
    from lib.core import with_knobs
    from lib.papers.atmc import lr_of

    cfg = with_knobs(CONFIGS["smoke"], method_lr=(("ap", 0.03),), ratio_lr=(("ap", 0.1, 0.3),),
                     lr=0.01)
    assert lr_of(cfg, "ap", 0.1) == 0.3 and lr_of(cfg, "ap", 0.01) == 0.03
    assert lr_of(cfg, "ap") == 0.03 and lr_of(cfg, "nap", 0.1) == 0.01
    with pytest.raises(ValueError, match="verdict_ratio"):
        with_knobs(CONFIGS["smoke"], verdict_ratio=0.5)


def test_ap8_is_quantized_and_not_factorized():
    """The ablation AP-8: the plain network's weights (no U, V, C) with at most 256 values
    each, holding four times AP's nonzeros at one size ratio."""
    from lib.core import ArtifactCache, with_knobs
    from lib.papers.atmc import compress

    cfg = with_knobs(CONFIGS["smoke"], steps=3, n_eval=20)
    cache, cpu = ArtifactCache(), torch.device("cpu")
    ap8 = compress(cfg, "ap-8", 0.1, 0, cpu, cache)
    ap = compress(cfg, "ap", 0.1, 0, cpu, cache)
    assert len(ap8["size"]["distinct"]) == len(ap["size"]["distinct"]) == 4  # 4 plain layers
    assert max(ap8["size"]["distinct"]) <= 256 < max(ap["size"]["distinct"])
    assert 0 <= ap8["budget"] - 4 * ap["budget"] < 4  # floor(0.4 n) vs 4 floor(0.1 n)


def _claim_metrics(clean_atmc8, clean_ap, clean_nap, chance=0.1):
    """A record whose intervals say "not reproduced" for both claims (each excludes the
    paper's effect), with the given clean accuracies at the smallest ratio."""
    m = {"chance_accuracy": chance, "atmc8_clean_verdict": clean_atmc8,
         "ap_clean_verdict": clean_ap, "nap_clean_verdict": clean_nap}
    for prefix in ("atmc8_vs_ap_pgd_verdict", "ap_vs_nap_pgd_verdict"):
        m.update({f"{prefix}_estimate": -0.05, f"{prefix}_lo": -0.08, f"{prefix}_hi": -0.02})
    return m


def test_claims_are_inconclusive_when_a_compressed_model_cannot_fit_the_task():
    """The control gate: at chance clean accuracy (every method at ratio 1e-3 in the
    tutorial) a PGD difference is between collapsed networks, so the verdict is
    inconclusive; the same intervals with models that fit the task stay not reproduced."""
    from lib.core.stats import INCONCLUSIVE, NOT_REPRODUCED
    from lib.papers.atmc import CLAIMS, FIT_MARGIN, chance_accuracy, fits_task

    assert chance_accuracy(torch.tensor([0, 1, 1, 2, 1])) == pytest.approx(0.6)
    assert fits_task(0.1 + FIT_MARGIN + 1e-9, 0.1) and not fits_task(0.1 + FIT_MARGIN, 0.1)
    fit = [c.evaluate(_claim_metrics(0.8, 0.8, 0.9)) for c in CLAIMS]
    assert [j.verdict for j in fit] == [NOT_REPRODUCED] * 2
    collapsed = [CLAIMS[0].evaluate(_claim_metrics(0.092, 0.8, 0.9)),
                 CLAIMS[1].evaluate(_claim_metrics(0.8, 0.8, 0.15))]
    assert [j.verdict for j in collapsed] == [INCONCLUSIVE] * 2
    assert "ATMC-8 0.092" in collapsed[0].ours and "control failed" in collapsed[0].ours
    assert "NAP 0.150" in collapsed[1].ours
    # an old record without the gate's metrics is not measured, not judged
    old = {k: v for k, v in _claim_metrics(0.8, 0.8, 0.9).items() if "clean" not in k}
    assert all(c.evaluate(old).verdict != NOT_REPRODUCED for c in CLAIMS)
