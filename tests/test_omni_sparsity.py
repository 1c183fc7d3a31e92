"""Omni-sparsity: nested supernet masks, the sandwich sampler, gradient accumulation over
sub-networks, sub-network sizes and the budgeted evolutionary search."""

import itertools

import pytest
import torch

from lib.asr import ASRModel, collate, count_parameters, small_rnnt_config
from lib.core import make_generator
from lib.papers.omni_sparsity import (
    CONFIGS,
    apply_subnet,
    attach_dense_masks,
    evolutionary_search,
    max_sparsity,
    nested_subnet_masks,
    omni_supernet_step,
    relative_gain,
    sample_subnets,
    shared_weight,
    subnet_size,
    weight_groups,
)
from lib.sparse import get_mask, magnitude_mask

TINY = small_rnnt_config(6, encoding_dim=32, time_reduction_input_dim=8, num_heads=2,
                         ffn_dim=32, num_layers=3, symbol_embedding_dim=16, dropout=0.0)


def _model(seed=0):
    torch.manual_seed(seed)
    model = ASRModel(TINY)
    groups = weight_groups(model, "encoder", "block")
    attach_dense_masks(groups)
    return model, groups


def test_groups_cover_the_emformer_layers():
    model, groups = _model()
    assert [n for n, _ in groups] == ["emformer.0", "emformer.1", "emformer.2"]
    assert all(len(mods) == 5 for _, mods in groups)  # q, kv, out, ffn in, ffn out
    linear = weight_groups(ASRModel(TINY), "encoder+predictor", "linear")
    assert len(linear) == 3 * 5 + 2 and all(len(mods) == 1 for _, mods in linear)
    assert linear[0][0] == "block0.attention.emb_to_key_value"
    assert linear[-1][0] == "lstm0.p2g"


def test_supernet_masks_are_nested_and_are_magnitude_masks():
    model, groups = _model()
    g = make_generator(0)
    choices = [round(0.1 * i, 1) for i in range(10)]
    subnets = [tuple(choices[int(i)] for i in torch.randint(10, (3,), generator=g))
               for _ in range(6)] + [(0.0, 0.0, 0.0), (0.9, 0.9, 0.9)]
    masks = nested_subnet_masks(groups, subnets)
    modules = [(gi, m) for gi, (_, mods) in enumerate(groups) for m in mods]
    for j, (gi, m) in enumerate(modules):
        w = shared_weight(m)
        for a, b in itertools.product(range(len(subnets)), repeat=2):
            if subnets[a][gi] <= subnets[b][gi]:
                # a weight pruned at the lower sparsity is pruned at the higher one
                assert bool((masks[b][j] <= masks[a][j]).all())
        for k, s in enumerate(subnets):
            assert torch.equal(masks[k][j], magnitude_mask(w, s[gi]))


def test_subnet_size_counts_the_nonzero_parameters():
    model, groups = _model()
    with torch.no_grad():
        for p in model.parameters():  # no exact zeros anywhere before masking
            p.add_(1e-3 * torch.sign(p) + (p == 0) * 1e-3)
    total = count_parameters(model)
    for genes in [(0.0, 0.0, 0.0), (0.5, 0.7, 0.9), (0.3, 0.0, 0.6)]:
        apply_subnet(groups, genes)
        nonzero = sum(int((m.weight != 0).sum()) for _, mods in groups for m in mods)
        others = total - sum(m.weight.numel() for _, mods in groups for m in mods)
        assert subnet_size(groups, genes, total) == nonzero + others


def test_gradual_pruning_keeps_pruned_weights_pruned():
    model, groups = _model()
    apply_subnet(groups, (0.5,) * 3, keep_pruned=True)
    before = [get_mask(m).clone() for _, mods in groups for m in mods]
    with torch.no_grad():  # pruned weights grow large: magnitude alone would revive them
        for _, mods in groups:
            for m in mods:
                w = shared_weight(m)
                w.add_((1 - get_mask(m)) * 100.0)
    apply_subnet(groups, (0.7,) * 3, keep_pruned=True)
    after = [get_mask(m) for _, mods in groups for m in mods]
    assert all(bool((a <= b).all()) for a, b in zip(after, before, strict=True))
    apply_subnet(groups, (0.7,) * 3)  # the supernet ranks the shared weights: they return
    revived = [get_mask(m) for _, mods in groups for m in mods]
    assert all(bool((r > b).any()) for r, b in zip(revived, before, strict=True))


def test_sandwich_sampler_follows_the_cubic_ramp():
    cfg = CONFIGS.get("tutorial", supernet_steps=100, ramp_fraction=0.5, n_random=2)
    assert max_sparsity(0, cfg) == 0.0 and max_sparsity(50, cfg) == pytest.approx(0.9)
    assert max_sparsity(25, cfg) == pytest.approx(0.9 * (1 - 0.5**3))
    g = make_generator(1)
    # at step 0 only the dense net is allowed: it is trained once, not four times
    assert sample_subnets(0, 3, cfg, g) == [(0.0, 0.0, 0.0)]
    mid = [sample_subnets(20, 3, cfg, g) for _ in range(50)]
    cap = max_sparsity(20, cfg)
    assert all(s <= cap + 1e-9 for subnets in mid for genes in subnets for s in genes)
    assert all(len(set(m)) == len(m) for m in mid)
    assert mid[0][1] == (max(c for c in cfg.levels if c <= cap + 1e-9),) * 3
    assert sample_subnets(80, 3, cfg, make_generator(7)) == \
        sample_subnets(80, 3, cfg, make_generator(7))


def test_after_the_ramp_every_reported_level_is_trained_as_itself_each_step():
    cfg = CONFIGS.get("tutorial", supernet_steps=100, ramp_fraction=0.5, n_random=2)
    g = make_generator(3)
    for step in range(50, 100):
        members = sample_subnets(step, 7, cfg, g)
        assert members[0] == (0.0,) * 7 and members[1] == (0.9,) * 7
        # one sparsity per member (uniform), all distinct: exactly the four reported levels
        assert all(len(set(m)) == 1 for m in members)
        assert sorted(m[0] for m in members) == sorted(cfg.levels)
    # drawing random levels from every choice: distinct members, uniform each
    wide = CONFIGS.get("tutorial", supernet_steps=100, member_levels="choices", n_random=3)
    seen = set()
    for _ in range(60):
        members = sample_subnets(90, 5, wide, g)
        assert len(members) == 5 and len(set(members)) == 5
        seen.update(m[0] for m in members)
    assert seen == set(wide.sparsity_choices)
    # per-layer jitter: genes move one choice at most from the member's level
    jit = CONFIGS.get("tutorial", supernet_steps=100, layer_jitter=0.5)
    moved = 0
    for _ in range(30):
        for m in sample_subnets(90, 20, jit, g)[2:]:
            base = [lv for lv in jit.levels if all(abs(x - lv) <= 0.1 + 1e-9 for x in m)]
            assert base
            moved += sum(x != base[0] for x in m)
    assert moved > 0
    # the earlier reading draws every gene independently (kept as a knob)
    old = CONFIGS.get("tutorial", supernet_steps=100, sampling="per-layer")
    assert any(len(set(m)) > 1 for m in sample_subnets(90, 20, old, g)[2:])


def _masked_grads(model, groups, batch, member):
    """By hand: the gradient of L(W * M) with respect to W, for top-k magnitude masks M
    computed here with torch.sort, on a copy of the model without any parametrization."""
    plain = ASRModel(TINY)
    own = {k.replace(".parametrizations.weight.original", ".weight"): v
           for k, v in model.state_dict().items()}
    plain.load_state_dict({k: own[k] for k in plain.state_dict()})
    mods = [m for _, ms in weight_groups(plain, "encoder", "block") for m in ms]
    genes = [gi for gi, (_, ms) in enumerate(groups) for _ in ms]
    masks = []
    for m, gi in zip(mods, genes, strict=True):
        w = m.weight.detach().clone()
        k = int(round(member[gi] * w.numel()))
        mask = torch.ones(w.numel())
        mask[torch.sort(w.abs().flatten(), stable=True).indices[:k]] = 0
        mask = mask.view_as(w)
        with torch.no_grad():
            m.weight.mul_(mask)
        masks.append((m, mask))
    plain.zero_grad()
    plain(batch).backward()
    for m, mask in masks:
        m.weight.grad.mul_(mask)
    return {n: p.grad.clone() for n, p in plain.named_parameters() if p.requires_grad}


def _named_grads(model):
    return {n.replace(".parametrizations.weight.original", ".weight"): p.grad.clone()
            for n, p in model.named_parameters() if p.requires_grad}


def test_supernet_step_accumulates_the_mean_gradient_of_the_subnetworks():
    model, groups = _model(1)
    g = torch.Generator().manual_seed(0)
    batch = collate([torch.randn(n, 80, generator=g) for n in (40, 55)], [[1, 2], [3]])
    subnets = [(0.0, 0.0, 0.0), (0.5, 0.9, 0.2)]
    each = [_masked_grads(model, groups, batch, s) for s in subnets]
    expected = {n: sum(g[n] for g in each) / len(subnets) for n in each[0]}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.0)
    logs = omni_supernet_step(model, groups, batch, subnets, opt, clip_grad_norm=1e9)
    got = _named_grads(model)
    assert set(got) == set(expected)
    for n, e in expected.items():
        assert torch.allclose(got[n], e, atol=1e-6), n
    assert len([k for k in logs if k.startswith("loss_")]) == 2
    # trained at one sparsity only (the dense member twice), the gradient differs
    dense_only = each[0]
    assert any(not torch.allclose(dense_only[n], expected[n], atol=1e-4) for n in expected)


def test_in_place_distillation_pulls_members_toward_the_dense_member():
    from lib.papers.omni_sparsity import lattice_distillation

    logits = torch.randn(2, 5, 3, 4)
    lengths, tl = torch.tensor([5, 3]), torch.tensor([2, 1])
    assert float(lattice_distillation(logits, logits, lengths, tl)) == pytest.approx(0, abs=1e-6)
    # brute force over the valid nodes
    other = torch.randn(2, 5, 3, 4)
    kl, n = 0.0, 0
    for b in range(2):
        for t in range(int(lengths[b])):
            for u in range(int(tl[b]) + 1):
                p = torch.softmax(other[b, t, u], -1)
                q = torch.softmax(logits[b, t, u], -1)
                kl += float((p * (p.log() - q.log())).sum())
                n += 1
    assert float(lattice_distillation(logits, other, lengths, tl)) == pytest.approx(kl / n,
                                                                                  rel=1e-5)
    model, groups = _model(1)
    g = torch.Generator().manual_seed(0)
    batch = collate([torch.randn(n, 80, generator=g) for n in (40, 55)], [[1, 2], [3]])
    subnets = [(0.0, 0.0, 0.0), (0.9, 0.9, 0.9)]
    grads = []
    for distill in (0.0, 0.5):
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
        omni_supernet_step(model, groups, batch, subnets, opt, distill=distill, member_seed=0)
        grads.append([p.grad.clone() for p in model.parameters() if p.requires_grad])
    assert any(not torch.allclose(a, b) for a, b in zip(*grads, strict=True))
    with pytest.raises(ValueError, match="dense member first"):
        omni_supernet_step(model, groups, batch, subnets[::-1], opt, distill=0.5)


def test_search_never_exceeds_the_budget_and_beats_uniform_on_a_known_landscape():
    sizes = [100, 200, 300, 400]
    choices = [round(0.1 * i, 1) for i in range(10)]
    weights = [4.0, 1.0, 3.0, 0.5]  # pruning gene 3 is cheap, gene 0 is expensive

    def size(genes):
        return 1000 - sum(round(s * n) for s, n in zip(genes, sizes, strict=True))

    def fitness(genes):
        return sum(w * s**2 for w, s in zip(weights, genes, strict=True))

    uniform = (0.5,) * 4
    budget = size(uniform)
    optimum = min(fitness(g) for g in itertools.product(choices, repeat=4) if size(g) <= budget)
    out = evolutionary_search(fitness, size, budget, 4, choices, population=8, generations=40,
                              mutation_prob=0.3, generator=make_generator(0),
                              initial=[uniform])
    assert all(t["size"] <= budget for t in out["trace"]) and out["size"] <= budget
    assert out["fitness"] <= fitness(uniform)
    # brute force over all 10^4 vectors: the search gets close to the true optimum
    assert out["fitness"] <= optimum * 1.1, (out["best"], out["fitness"], optimum)
    assert out["evaluations"] < 10**4 / 20
    assert out["evaluations"] == len(out["trace"])
    resampled = evolutionary_search(fitness, size, budget, 4, choices, population=8,
                                    generations=12, mutation_prob=0.3,
                                    generator=make_generator(0), mutation="resample")
    assert all(t["size"] <= budget for t in resampled["trace"])
    with pytest.raises(ValueError, match="no sub-network fits"):
        evolutionary_search(fitness, size, 10, 4, choices, population=4, generations=1,
                            mutation_prob=0.3, generator=make_generator(0))


def test_supernet_step_under_ddp_equals_one_process_on_the_same_batches():
    from lib.core import distributed
    from tests._omni_ddp_worker import supernet_steps

    single = torch.tensor(supernet_steps(2, 0))
    results = distributed.launch(supernet_steps, 2, 2, 0)
    rank0, rank1 = (torch.tensor(results[r]) for r in (0, 1))
    assert torch.equal(rank0, rank1), "replicas must stay identical"
    assert torch.allclose(rank0, single, atol=1e-5, rtol=0)
    assert not torch.allclose(single, torch.tensor(supernet_steps(2, 1)), atol=1e-3)


def test_config_validation_and_relative_gain():
    with pytest.raises(ValueError, match="valid knobs"):
        CONFIGS.get("smoke", sparsity=0.5)
    with pytest.raises(ValueError, match="not among sparsity_choices"):
        CONFIGS.get("smoke", levels=(0.0, 0.55))
    with pytest.raises(ValueError, match="granularity"):
        CONFIGS.get("smoke", granularity="layer")
    assert relative_gain(10.66, 10.0) == pytest.approx(0.0619, abs=1e-4)
