"""Omni-sparsity end to end on a tiny recogniser: the supernet training trains several
sub-networks a step, the pruned baseline is pruned, masks and exact sparsities survive the
artifact round trip, and ``evaluate_levels`` measures what it says."""

import pytest
import torch

from lib.asr import (
    ASRModel,
    UtteranceSet,
    WordTokenizer,
    count_parameters,
    evaluate_wer,
    small_rnnt_config,
)
from lib.asr.model import cpu_state_dict
from lib.papers import omni_sparsity as omni
from lib.sparse import get_mask, magnitude_mask


def _dense_artifact():
    torch.manual_seed(0)
    tok = WordTokenizer(("a", "b", "c"))
    cfg = small_rnnt_config(tok.num_symbols, encoding_dim=32, time_reduction_input_dim=8,
                            num_heads=2, ffn_dim=32, num_layers=2, symbol_embedding_dim=8,
                            dropout=0.0)
    model = ASRModel(cfg)
    g = torch.Generator().manual_seed(0)
    texts = ["a b", "c", "b b c", "a", "c a", "b"] * 2
    data = UtteranceSet([torch.randn(30 + 9 * i, 80, generator=g) for i in range(12)],
                        texts, tok)
    model.cmvn.fit(data.features)
    return ({"state_dict": cpu_state_dict(model), "model_config": model.config.__dict__.copy(),
             "tokenizer": tok.state(), "steps": 0, "train_seconds": 0.0, "wer": {}},
            data, tok)


CFG = omni.CONFIGS.get("smoke", supernet_steps=6, pruned_steps=6, ramp_fraction=0.5,
                       prune_ramp_fraction=0.5, prune_every=2, batch_size=4, warmup_steps=1,
                       levels=(0.0, 0.5, 0.9), eval_batch_size=8)


@pytest.fixture(scope="module")
def trained():
    dense, data, tok = _dense_artifact()
    supernet = omni.train_supernet(dense, data, CFG, seed=3, show_progress=False)
    pruned = {s: omni.gradual_prune(dense, data, CFG, s, seed=3, show_progress=False)
              for s in (0.5, 0.9)}
    return dense, data, tok, supernet, pruned


def test_supernet_trains_several_distinct_subnetworks_each_step(trained, monkeypatch):
    _, _, _, supernet, _ = trained
    hist = supernet["history"]
    assert len(hist) == CFG.supernet_steps
    assert supernet["passes"] == sum(h["n_subnets"] for h in hist)
    # after the ramp: the three levels, each once (no duplicate member)
    assert all(h["n_subnets"] == 3 for h in hist[CFG.supernet_steps // 2:])
    assert hist[0]["n_subnets"] == 1  # step 0: only the dense member is allowed
    assert hist[-1]["s_max"] == pytest.approx(0.9)
    # what train_supernet hands the step: after the ramp, the dense and the uniform 90%
    # member and random members, distinct; trained at one sparsity only, they would agree
    dense, data, _ = _dense_artifact()
    seen, step = [], omni.method.omni_supernet_step

    def spy(model, groups, batch, subnets, optimizer, **kw):
        seen.append([tuple(s) for s in subnets])
        return step(model, groups, batch, subnets, optimizer, **kw)

    monkeypatch.setattr(omni.method, "omni_supernet_step", spy)
    omni.train_supernet(dense, data, CFG, seed=3, show_progress=False)
    assert len(seen) == CFG.supernet_steps
    n = len(seen[0][0])
    for members in seen[CFG.supernet_steps // 2:]:
        assert members[0] == (0.0,) * n and members[1] == (0.9,) * n
        assert len(set(members)) == len(members) == 3
        assert sorted(m[0] for m in members) == sorted(CFG.levels)
        assert all(len(set(m)) == 1 for m in members)  # one uniform level per member


def test_supernet_weights_changed_and_come_back_dense(trained):
    dense, _, _, supernet, _ = trained
    model, groups, _ = omni.load_finetuned(dense, supernet, CFG)
    mods = [m for _, ms in groups for m in ms]
    assert all(bool((get_mask(m) == 1).all()) for m in mods), "stored as the dense member"
    before = dense["state_dict"]
    moved = [k for k, v in cpu_state_dict(model).items()
             if k in before and v.shape == before[k].shape and not torch.equal(v, before[k])]
    assert moved, "training changed no weight"
    omni.apply_subnet(groups, (0.9,) * len(groups))
    for m in mods:
        assert torch.equal(get_mask(m), magnitude_mask(omni.shared_weight(m), 0.9))


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_pruned_baseline_is_exactly_pruned_and_survives_the_round_trip(trained, sparsity):
    dense, _, _, _, pruned = trained
    run = pruned[sparsity]
    assert run["history"][-1]["sparsity"] == pytest.approx(sparsity)
    model, groups, _ = omni.load_finetuned(dense, run, CFG)
    for _, mods in groups:
        for m in mods:
            assert int((get_mask(m) == 0).sum()) == round(sparsity * m.weight.numel())
            assert int((m.weight == 0).sum()) >= round(sparsity * m.weight.numel())
    total = count_parameters(model)
    assert omni.subnet_size(groups, (sparsity,) * len(groups), total) == \
        total - sum(round(sparsity * m.weight.numel()) for _, ms in groups for m in ms)


def test_evaluate_levels_measures_each_model_at_its_level(trained):
    dense, data, tok, supernet, pruned = trained
    runs = {"dense": dense, "supernet": supernet, "pruned": pruned,
            "sets": {"t": data}, "tokenizer": tok}
    rows = omni.evaluate_levels(CFG, runs, splits=("t",))
    by = {(r["approach"], r["sparsity"]): r for r in rows}
    assert set(by) == {(a, s) for a in ("omni-sparsity supernet", "individually pruned")
                       for s in CFG.levels}
    # the 0% baseline is the dense model itself
    dense_model, _ = omni.experiment.model_from_artifact(dense)
    assert by[("individually pruned", 0.0)]["wer_t"] == pytest.approx(
        evaluate_wer(dense_model, data, tok, batch_size=8))
    # the 90% pruned row is that model's WER; the supernet row its own 90% sub-network's
    model, groups, _ = omni.load_finetuned(dense, pruned[0.9], CFG)
    assert by[("individually pruned", 0.9)]["wer_t"] == pytest.approx(
        evaluate_wer(model, data, tok, batch_size=8))
    net, groups, _ = omni.load_finetuned(dense, supernet, CFG)
    assert by[("omni-sparsity supernet", 0.9)]["wer_t"] == pytest.approx(
        omni.subnet_wer(net, groups, (0.9,) * len(groups), data, tok, 8))
    assert by[("omni-sparsity supernet", 0.9)]["params"] == \
        by[("individually pruned", 0.9)]["params"] < by[("omni-sparsity supernet", 0.5)]["params"]
    assert all(len(r["hyps_t"]) == len(data) for r in rows)


def test_artifacts_round_trip_keeps_exact_sparsities_masks_and_both_budgets(tmp_path):
    """Through the artifact cache (smoke scale): the pruned models come back exactly pruned,
    the supernet's two budgets are distinct models from one run, and a second call only
    loads (the same weights, bit for bit)."""
    from lib.core import ArtifactCache

    cfg = omni.CONFIGS.get("smoke", seeds=(0,))
    cache = ArtifactCache(tmp_path)
    runs = omni.finetuned_artifacts(cfg, 0, cache=cache, show_progress=False)
    plan = omni.supernet_plan(cfg)
    assert runs["supernet_one"]["passes"] == plan["passes_one"] == cfg.pruned_steps
    assert runs["supernet"]["passes"] >= plan["passes_all"] == 3 * cfg.pruned_steps
    one, full = runs["supernet_one"]["state_dict"], runs["supernet"]["state_dict"]
    assert any(not torch.equal(one[k], full[k]) for k in one), "two budgets, two models"
    assert omni.finetuned_cached(cfg, 0, cache=cache)
    again = omni.finetuned_artifacts(cfg, 0, cache=cache, show_progress=False)
    for s in cfg.pruned_levels:
        model, groups, _ = omni.load_finetuned(again["dense"], again["pruned"][s], cfg)
        for _, mods in groups:
            for m in mods:
                assert int((get_mask(m) == 0).sum()) == round(s * m.weight.numel())
        for k, v in runs["pruned"][s]["state_dict"].items():
            assert torch.equal(v, again["pruned"][s]["state_dict"][k])
    for k, v in one.items():
        assert torch.equal(v, again["supernet_one"]["state_dict"][k])
    # the supernet's sub-network masks are nested across the reported levels
    net, groups, _ = omni.load_finetuned(again["dense"], again["supernet"], cfg)
    masks = omni.nested_subnet_masks(groups, [(s,) * len(groups) for s in sorted(cfg.levels)])
    for lo, hi in zip(masks, masks[1:], strict=False):
        assert all(bool((b <= a).all()) for a, b in zip(lo, hi, strict=True))
