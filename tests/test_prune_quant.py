"""Sparsity-quantization joint learning: the budget is met as accounted, the ADMM residual
shrinks, the V-step's bits are the exact multiple-choice knapsack's."""

import itertools

import pytest
import torch
from torch import nn

from lib.core import with_knobs
from lib.papers import prune_quant as pq
from lib.quant import kmeans_quantize, model_size_bits
from lib.sparse import prunable_layers


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny layers: threads only add synchronisation
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def smoke():
    """The method tests' fixture: a 4-layer CNN on scikit-learn's digits (seconds a run;
    the chapter's smoke scale, lenet5_like on synthetic digits, runs in test_chapters)."""
    return with_knobs(pq.CONFIGS["smoke"], model="small_cnn", dataset="digits",
                      image_size=16, pretrain_epochs=4, round_steps=0,
                      budgets=(50.0, 200.0))


def test_the_chapter_compresses_the_shared_heterogeneous_lenet5_like():
    """Tutorial scale: lenet5_like (100-400 k weights, five layers of very different size)
    on the synthetic digits with 5,000 test images, the same dense artifact the capstone
    trains (one cache key), the knee budgets including 300x."""
    from lib.papers.head_to_head import experiment as h2h
    from lib.vision.classify import trained_classifier_key

    cfg = pq.CONFIGS["tutorial"]
    sizes = [m.weight.numel() for _, m in prunable_layers(pq.task.build_model(cfg.model))]
    assert 100_000 <= sum(sizes) <= 400_000 and len(sizes) == 5
    assert max(sizes) / sum(sizes) < 0.8 and max(sizes) / min(sizes) > 100
    assert cfg.n_test == 5000 and 300.0 in cfg.budgets
    h = h2h.CONFIGS["tutorial"]
    assert pq.dense_key(cfg) == trained_classifier_key(
        "lenet5_like", {}, h2h.data_config(h), h2h.dense_recipe(h), 0)


def test_synthetic_task_scores_the_split_asked_for_and_rounds_of_round_steps():
    cfg = pq.CONFIGS["smoke"]
    test, dev = pq.make_task(cfg), pq.make_task(with_knobs(cfg, eval_split="dev"))
    assert (test.n_test, dev.n_test, test.steps_per_epoch) == (200, 100, 10)
    x, y = test.batch(0)
    assert x.shape == (64, 1, 28, 28) and y.shape == (64,)
    with pytest.raises(ValueError, match="eval_split"):
        pq.make_task(with_knobs(cfg, eval_split="train"))


def test_start_bits_sweep_runs_every_seed_and_the_envelope_averages_them(monkeypatch):
    """Every (seed, method, start bits, budget) is run once with the method's own knob;
    the envelope is the best start by the mean over seeds, not the luckiest single run."""
    calls = []

    def fake(cfg, method, level, seed, device, cache):
        calls.append((seed, method, cfg.initial_bits, cfg.ptq_bits, level))
        return {"ratio": level, "accuracy": 0.5, "layers": []}

    monkeypatch.setattr(pq.experiment, "cached_compress", fake)
    cfg = pq.CONFIGS["smoke"]
    rows = pq.start_bits_sweep(cfg, ("joint", "deep-compression"), (2, 3), seeds=(0, 1, 2))
    assert len(rows) == len(calls) == 3 * 2 * 2 * len(cfg.budgets)
    assert {(c[0], c[1]) for c in calls} == {(s, m) for s in (0, 1, 2)
                                             for m in ("joint", "deep-compression")}
    assert all((c[2] if c[1] == "joint" else c[3]) in (2, 3) for c in calls)
    assert all(c[3] == cfg.ptq_bits for c in calls if c[1] == "joint")
    sweep = [{"method": "joint", "budget": 300.0, "start_bits": b, "seed": s, "accuracy": a}
             for b, accs in ((2, (0.9, 0.1, 0.2)), (3, (0.5, 0.5, 0.6)))
             for s, a in enumerate(accs)]
    (env,) = pq.envelope_rows(sweep)
    assert env["best_start_bits"] == 3 and env["best_accuracy"] == pytest.approx(1.6 / 3)
    assert (env["min_accuracy"], env["max_accuracy"], env["n_seeds"]) == (0.5, 0.6, 3)


def test_final_model_meets_the_bit_budget_as_accounted(smoke):
    for method, level in (("joint", 200.0), ("prune-only", 50.0), ("sequential-admm", 200.0),
                          ("deep-compression", 200.0), ("uniform-bits-admm", 200.0),
                          ("quantize-only", 2.0)):
        r = pq.compress(smoke, method, level)
        model = pq.make_task(smoke).make_model()
        model.load_state_dict(r["state_dict"])
        layers = prunable_layers(model)
        bits = [row["bits"] for row in r["layers"]]
        recount = model_size_bits(layers, bits).total_bits
        assert recount == r["size_bits"] <= r["budget_bits"], method
        if method in ("uniform-bits-admm", "sequential-admm", "deep-compression"):
            assert bits == [smoke.ptq_bits] * len(layers), method
        n = sum(m.weight.numel() for _, m in layers)
        if method != "quantize-only":
            assert r["budget_bits"] == int(32 * n // level)
            assert r["size_bits"] >= 0.95 * r["budget_bits"], "the budget should be used"
        for (_, m), b in zip(layers, bits, strict=True):
            values = torch.unique(m.weight.detach())
            nonzero = values[values != 0].numel()
            assert nonzero <= 2 ** b, f"{method}: {nonzero} values do not fit {b} bits"
    with pytest.raises(ValueError, match="valid methods"):
        pq.compress(smoke, "distill-only", 10.0)
    with pytest.raises(ValueError, match="ratio"):
        pq.budget_bits(nn.Linear(2, 2), 0.5)


def test_admm_residual_shrinks_over_iterations(smoke):
    cfg = with_knobs(smoke, epochs=10, rho=10.0)  # one V-step an epoch, as the official code
    task = pq.make_task(cfg)
    dense = pq.pretrained_dense(cfg)["state_dict"]

    def residuals(config) -> list[float]:
        model = task.make_model()
        model.load_state_dict(dense)
        out = pq.admm_compress(model, task, config, pq.budget_bits(model, 50.0))
        return [h["residual"] for h in out["history"][1:]]  # [0]: before any W-step

    pulled = residuals(cfg)
    third = len(pulled) // 3
    assert len(pulled) == 10
    assert sum(pulled[-third:]) < 0.5 * sum(pulled[:third]), pulled
    assert pulled[-1] < pulled[0]
    free = residuals(with_knobs(cfg, rho=0.0))  # no proximal pull: W never meets V
    assert free[-1] > 3 * pulled[-1], (free, pulled)


def _brute_force_bits(layers, nnz, candidate, budget):
    dist = [[kmeans_quantize(w, b).distortion for b in candidate] for w in layers]
    best, arg = float("inf"), None
    for choice in itertools.product(range(len(candidate)), repeat=len(layers)):
        cost = sum(candidate[i] * n for i, n in zip(choice, nnz, strict=True))
        d = sum(dist[j][i] for j, i in enumerate(choice))
        if cost <= budget and d < best - 1e-12:
            best, arg = d, [candidate[i] for i in choice]
    return arg, best, dist


def test_v_step_bits_equal_the_exact_multiple_choice_knapsack():
    g = torch.Generator().manual_seed(0)
    candidate = (1, 2, 3, 4, 5, 6)
    agree = 0
    for case in range(12):
        layers = [torch.randn(int(torch.randint(20, 120, (1,), generator=g)), generator=g)
                  * float(torch.rand(1, generator=g) * 2 + 0.1) for _ in range(3)]
        for w in layers:
            w[torch.rand(w.shape, generator=g) < 0.3] = 0.0
        support = [w != 0 for w in layers]
        nnz = [int(s.sum()) for s in support]
        budget = int(sum(nnz) * (1.5 + 3.5 * case / 11))
        _, bits, info = pq.quantization_projection(layers, support, budget, candidate, "exact")
        expected, best, dist = _brute_force_bits(layers, nnz, candidate, budget)
        assert bits == expected, (case, bits, expected)
        # the paper's greedy: feasible and within one hull step of the optimum
        _, greedy, _ = pq.quantization_projection(layers, support, budget, candidate, "greedy")
        assert sum(b * n for b, n in zip(greedy, nnz, strict=True)) <= budget
        got = sum(dist[j][candidate.index(b)] for j, b in enumerate(greedy))
        assert got <= best + max(d[0] - d[-1] for d in dist) + 1e-9
        agree += info["greedy_agrees"]
    assert agree >= 6, "greedy and exact should agree on most small cases"


def test_sparse_projection_and_proximal_pull_closed_forms():
    w = [torch.tensor([3.0, -0.5, 1.0]), torch.tensor([2.0, 0.1])]
    # scores w^2/b with bits (1, 4): 9, .25, 1 | 1, .0025 -> keep 3 (1 bit), 1 (1 bit), 2 (4 bits)
    nnz = pq.sparse_projection(w, [1, 4], budget=6)
    assert nnz == [2, 1] and w[0].tolist() == [3.0, 0.0, 1.0] and w[1].tolist() == [2.0, 0.0]
    x = torch.randn(5, generator=torch.Generator().manual_seed(1))
    v, u = torch.randn(5), torch.randn(5)
    pulled = [x.clone()]
    pq.proximal_pull(pulled, [v], [u], lr=0.1, rho=3.0)
    # optimality: (X - W) / lr + rho (X - V + U) = 0
    assert torch.allclose((pulled[0] - x) / 0.1 + 3.0 * (pulled[0] - v + u), torch.zeros(5),
                          atol=1e-5)


def test_distillation_loss_closed_form():
    torch.manual_seed(0)
    student, teacher = nn.Linear(4, 3), nn.Linear(4, 3)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    t = 2.0
    plain = pq.classification_loss(student, x, y)
    kd = pq.classification_loss(student, x, y, teacher, t)
    p = torch.softmax(teacher(x) / t, 1)
    expected = plain + t * -(p * torch.log_softmax(student(x) / t, 1)).sum(1).mean()
    assert torch.allclose(kd, expected) and kd > plain


def test_full_scale_code_path_on_an_mnist_fixture(tmp_path):
    from lib.core import ArtifactCache
    from tests.fixtures.formats import write_mnist as write_mnist_fixture

    write_mnist_fixture(tmp_path, 16, 8)
    cfg = pq.setup_config("full", "lenet5-mnist", data_root=str(tmp_path), epochs=1,
                          pretrain_epochs=1, batch_size=4, workers=0, kmeans_bins=32)
    cache = ArtifactCache(tmp_path / "cache")
    out = pq.run(cfg, cache=cache)
    # full scale runs the methods its claim compares, and records the claim's interval
    assert [r["method"] for r in out["runs"]] == list(pq.CLAIM_METHODS)
    for r in out["runs"]:
        assert r["size_bits"] <= r["budget_bits"] and r["ratio"] >= 1975.0
        assert len(r["layers"]) == 4 and len(r["correct"]) == 8
    assert "acc_joint_vs_deep_compression_estimate" in pq.claim_metrics(out)
    # full-scale runs checkpoint into their own run folders, removed once the artifact is in
    assert (cache.directory / "checkpoints").is_dir()
    assert not any((cache.directory / "checkpoints").rglob("*.pt"))
    with pytest.raises(ValueError, match="valid setups"):
        pq.setup_config("full", "vgg-cifar")
    with pytest.raises(FileNotFoundError, match="fetch_vision.py alexnet-pretrained"):
        pq.pretrained_dense(pq.setup_config("full", "alexnet-imagenet",
                                            data_root=str(tmp_path)))


def test_shared_weights_train_the_centres_by_the_summed_gradient():
    from lib.quant.shared import SharedWeights

    g = torch.Generator().manual_seed(3)
    w = torch.randn(200, generator=g)
    w[torch.rand(200, generator=g) < 0.4] = 0.0
    zeros = w == 0
    w.requires_grad_(True)
    shared = SharedWeights([w], [2])
    values = torch.unique(w.detach())
    assert values[values != 0].numel() <= 4 and bool((w.detach()[zeros] == 0).all())
    before = shared.codebooks[0].clone()
    w.grad = torch.randn(200, generator=g)
    shared.step(lr=0.1)
    a = shared.assign[0]
    # brute force: each centre moves by -lr times the sum of its weights' gradients
    for k in range(before.numel()):
        expected = 0.0 if k == shared.zero[0] else before[k] - 0.1 * w.grad[a == k].sum()
        assert torch.allclose(shared.codebooks[0][k], torch.as_tensor(expected), atol=1e-6)
    assert torch.equal(w.detach(), shared.codebooks[0][a]) and bool((w.detach()[zeros] == 0).all())


def test_joint_bits_come_from_the_v_step_and_feed_the_projection(smoke):
    """The joint method's key step: the V-step's knapsack picks the bits and the next sparse
    projection spends the budget at those bits. Started at 4 bits with only 1-3 bits allowed,
    the final bits must be the V-step's (not the initial 4, as a fixed-bits sequential
    pipeline would keep), and the re-projection at fewer bits keeps more nonzeros, so the
    budget is still used; projecting at the initial bits forever would use at most 3/4."""
    cfg = with_knobs(smoke, candidate_bits=(1, 2, 3), epochs=3)
    out = pq.compress(cfg, "joint", 100.0)
    bits = [row["bits"] for row in out["layers"]]
    assert set(bits) <= {1, 2, 3} and bits == out["history"][-1]["bits"]
    assert out["history"][0]["nnz"] != out["history"][-1]["nnz"]
    assert 0.9 * out["budget_bits"] <= out["size_bits"] <= out["budget_bits"]


def test_v_step_quantizes_w_plus_u_everywhere_so_stale_duals_decay():
    """Closed form. W = [0, 1, -1] (its first entry pruned after U gathered 0.5 there),
    U = [0.5, 0, 0], 1 bit: V = Q(W + U) = Q([0.5, 1, -1]) with 2 nonzero centres and the
    0 is [0.75, 0.75, -1] (distortion 0.125 < 0.25 of rounding 0.5 to 0 or to 1), so
    U <- U + W - V = [-0.25, 0.25, 0] and the residual |W - V|^2 / |W|^2 = 0.625 / 2.
    Restricted to W's support (the former V-step) V = [0, 1, -1] and U[0] stays 0.5.
    The knapsack prices W's 2 nonzeros: at a 2-bit budget 1 bit fits (3 entries would not)."""
    def fresh():
        w = [torch.tensor([0.0, 1.0, -1.0])]
        state = pq.method.ADMMState(w, [1])
        state.u[0].copy_(torch.tensor([0.5, 0.0, 0.0]))
        return w, state

    w, state = fresh()
    rec = pq.admm_v_step(w, state, 2, (1, 2), "exact", 512)
    assert rec["bits"] == [1] and rec["nnz"] == [2] and rec["kmeans_exact"]
    assert torch.allclose(state.v[0], torch.tensor([0.75, 0.75, -1.0]))
    assert torch.allclose(state.u[0], torch.tensor([-0.25, 0.25, 0.0]))
    assert rec["residual"] == pytest.approx(0.625 / 2)
    w, state = fresh()
    pq.admm_v_step(w, state, 2, (1, 2), "exact", 512, support="weights")
    assert torch.allclose(state.v[0], torch.tensor([0.0, 1.0, -1.0]))
    assert torch.allclose(state.u[0], torch.tensor([0.5, 0.0, 0.0])), "undecayed"
    with pytest.raises(ValueError, match="support"):
        pq.admm_v_step(w, state, 2, (1, 2), support="mask")


def test_v_step_says_exact_only_where_k_means_is_exact():
    """k-means is exact while each sign has at most kmeans_bins nonzeros; beyond, binned."""
    g = torch.Generator().manual_seed(3)
    small, big = torch.randn(40, generator=g), torch.randn(400, generator=g)
    for w, bins, exact in ((small, 64, True), (big, 64, False), (big, 512, True)):
        _, _, info = pq.quantization_projection([w], [torch.ones_like(w, dtype=torch.bool)],
                                                4 * w.numel(), (1, 2, 3, 4), "exact", bins)
        assert info["kmeans_exact"] == [exact], (w.numel(), bins)
    assert pq.method.zero_kmeans_is_exact(torch.tensor([1.0, 2.0, -1.0, 0.0]), 2)
    assert not pq.method.zero_kmeans_is_exact(torch.tensor([1.0, 2.0, 3.0, -1.0]), 2)


def test_uniform_bits_admm_differs_from_joint_only_by_the_bit_allocation(smoke):
    """The ablation keeps every layer at ptq_bits through every V-step, whatever the
    knapsack would choose; with only 1-3 bits on offer the joint method's knapsack must
    move off the starting 4. Both spend the same budget."""
    cfg = with_knobs(smoke, epochs=2, candidate_bits=(1, 2, 3))
    uni = pq.compress(cfg, "uniform-bits-admm", 200.0)
    joint = pq.compress(cfg, "joint", 200.0)
    assert all(h["bits"] == [cfg.ptq_bits] * 4 for h in uni["history"])
    assert all(set(h["bits"]) <= {1, 2, 3} for h in joint["history"])
    for r in (uni, joint):
        assert 0.9 * r["budget_bits"] <= r["size_bits"] <= r["budget_bits"]


def test_claim_metrics_pair_the_same_seeds_and_items():
    """Joint minus a baseline, paired: rows are seeds, columns items; a known difference."""
    ones, half = [1.0] * 10, [1.0] * 5 + [0.0] * 5
    runs = [{"method": m, "level": 100.0, "correct": c, "seed": s}
            for s in (0, 1) for m, c in (("joint", ones), ("deep-compression", half),
                                         ("uniform-bits-admm", ones))]
    metrics = pq.claim_metrics({"runs": runs}, n_boot=200)
    assert metrics["acc_joint_vs_deep_compression_estimate"] == pytest.approx(0.5)
    assert metrics["acc_joint_vs_uniform_bits_estimate"] == pytest.approx(0.0)
    assert metrics["claim_budget"] == 100.0
    assert metrics["acc_joint_vs_deep_compression_n_seeds"] == 2
    assert not any(k.startswith("acc_joint_vs_sequential_admm") for k in metrics)


def test_joint_vs_uniform_bits_is_inconclusive_when_the_allocation_did_not_act():
    """At a budget where the knapsack gave every layer the baseline's bits, joint and
    uniform bits are one method: their +0.0 [+0.0, +0.0] must not read "not reproduced"."""
    from lib.core.stats import INCONCLUSIVE, NOT_REPRODUCED

    def runs(joint_bits):
        return [{"method": m, "level": 1000.0, "seed": s, "correct": [1.0, 0.0, 1.0, 1.0],
                 "layers": [{"bits": b} for b in (joint_bits[s] if m == "joint" else (4, 4))]}
                for s in (0, 1) for m in ("joint", "uniform-bits-admm")]

    claim = next(c for c in pq.CLAIMS if c.id == "joint-vs-uniform-bits")
    idle = pq.claim_metrics({"runs": runs({0: (4, 4), 1: (4, 4)})}, n_boot=200)
    assert idle["joint_mixed_bits_share"] == 0.0
    judged = claim.evaluate(idle)
    assert judged.verdict == INCONCLUSIVE and "did not act" in judged.ours
    acted = pq.claim_metrics({"runs": runs({0: (5, 3), 1: (4, 4)})}, n_boot=200)
    assert acted["joint_mixed_bits_share"] == 0.5
    assert claim.evaluate(acted).verdict == NOT_REPRODUCED  # same accuracy, allocation acted
