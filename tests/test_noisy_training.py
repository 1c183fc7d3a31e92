"""Noisy training: the step, the noise, pruning under noise, the schedule, the probe."""

import copy
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from lib.asr import UtteranceSet, WordTokenizer, small_rnnt_config
from lib.asr.model import ASRModel, cpu_state_dict
from lib.core import make_generator
from lib.papers import noisy_training as nt
from lib.sparse import attach_mask, get_mask, magnitude_mask


def _toy_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 3))


def _toy_batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)


def _effective_weights(model):
    return {n: p.detach().clone() for n, p in
            [(f"{i}.weight", m.weight) for i, m in enumerate(model) if hasattr(m, "weight")]
            + [(f"{i}.bias", m.bias) for i, m in enumerate(model) if hasattr(m, "bias")]}


def test_noisy_step_updates_the_clean_weights_with_the_gradient_at_the_noisy_weights():
    x, y = _toy_batch()
    noisy = _toy_model()
    attach_mask(noisy[0], magnitude_mask(noisy[0].weight, 0.5))
    plain = copy.deepcopy(noisy)
    opt_noisy = torch.optim.AdamW(noisy.parameters(), lr=1e-2, weight_decay=0.01)
    opt_plain = torch.optim.AdamW(plain.parameters(), lr=1e-2, weight_decay=0.01)
    seen = {}

    def loss_fn():
        seen.update(_effective_weights(noisy))  # what the forward pass reads
        return nn.functional.cross_entropy(noisy(x), y)

    nt.noisy_training_step(noisy, loss_fn, opt_noisy, sigma=0.3, clip_grad_norm=None,
                           generator=make_generator(7))
    # the forward/backward saw noisy weight matrices, but clean biases and norm scales
    assert not torch.equal(seen["0.weight"], plain[0].weight)
    assert not torch.equal(seen["3.weight"], plain[3].weight)
    for name in ("0.bias", "1.weight", "1.bias", "3.bias"):
        assert torch.equal(seen[name], _effective_weights(plain)[name])
    # brute force: the gradient equals that of a plain model holding the noisy weights
    probe = _toy_model()
    with torch.no_grad():
        for i in (0, 1, 3):
            probe[i].weight.copy_(seen[f"{i}.weight"])
            probe[i].bias.copy_(seen[f"{i}.bias"])
    nn.functional.cross_entropy(probe(x), y).backward()
    mask = get_mask(noisy[0])
    torch.testing.assert_close(noisy[0].parametrizations.weight.original.grad,
                               probe[0].weight.grad * mask, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(noisy[3].weight.grad, probe[3].weight.grad, rtol=1e-6, atol=1e-7)
    # the update: a plain optimizer step from the clean weights on the same gradient
    for p, q in zip(plain.parameters(), noisy.parameters(), strict=True):
        p.grad = q.grad.clone()
    opt_plain.step()
    for (name, p), q in zip(noisy.state_dict().items(), plain.state_dict().values(),
                            strict=True):
        assert torch.equal(p, q), name


def test_weights_are_restored_bit_for_bit_even_when_the_step_fails():
    model = _toy_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="boom"):
        with nt.perturbed_weights(model, 0.5, generator=make_generator(0)):
            assert not torch.equal(model[0].weight, before["0.weight"])
            raise RuntimeError("boom")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with nt.perturbed_weights(model, 0.0, generator=make_generator(0)) as targets:
        assert targets == [] and torch.equal(model[0].weight, before["0.weight"])


def test_pruned_weights_stay_exactly_zero_through_noisy_training():
    x, y = _toy_batch()
    model = _toy_model()
    for i in (0, 3):
        attach_mask(model[i], magnitude_mask(model[i].weight, 0.75))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(20):
        def loss_fn():
            for i in (0, 3):  # zero in the forward pass itself, not only after the step
                assert torch.all(model[i].weight[get_mask(model[i]) == 0] == 0)
            return nn.functional.cross_entropy(model(x), y)

        nt.noisy_training_step(model, loss_fn, opt, sigma=1.0, kind="multiplicative"
                               if step % 2 else "additive", generator=make_generator(step))
        for i in (0, 3):
            pruned = get_mask(model[i]) == 0
            assert torch.all(model[i].weight[pruned] == 0)
            assert torch.all(model[i].parametrizations.weight.original.grad[pruned] == 0)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_additive_noise_has_the_configured_scale_over_many_draws():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(40, 30, generator=g) * 0.7 + 0.2
    mask = magnitude_mask(w, 0.6)
    kept_std = w[mask.bool()].std()
    draws = torch.stack([nt.sample_weight_noise(w, 0.05, "additive", make_generator(i), mask)
                         for i in range(400)])
    assert torch.all(draws[:, mask == 0] == 0), "no noise on pruned weights"
    kept = draws[:, mask == 1].flatten().double()
    assert abs(kept.std().item() / (0.05 * kept_std.item()) - 1) < 0.01
    assert abs(kept.mean().item()) < 3 * 0.05 * kept_std.item() / math.sqrt(kept.numel())
    # Gaussian: Kolmogorov-Smirnov against N(0, (sigma std)^2) on a subsample
    z = (kept[::37] / (0.05 * kept_std)).numpy()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # independent of the weight it is added to (additive), unlike the multiplicative kind
    per_entry = draws[:, mask == 1].std(0)
    assert abs(np.corrcoef(per_entry.numpy(), w[mask.bool()].abs().numpy())[0, 1]) < 0.15


def test_multiplicative_noise_scales_with_each_weight():
    g = torch.Generator().manual_seed(4)
    w = torch.randn(20, 20, generator=g)
    draws = torch.stack([nt.sample_weight_noise(w, 0.1, "multiplicative", make_generator(i))
                         for i in range(600)])
    ratio = (draws / w).double()
    assert abs(ratio.std().item() / 0.1 - 1) < 0.01
    per_entry = draws.std(0)
    torch.testing.assert_close(per_entry / w.abs(), torch.full_like(w, 0.1), rtol=0.15,
                               atol=0.0)


def test_noise_schedule_closed_form():
    assert nt.noise_scale(0, 100, 0.1) == nt.noise_scale(99, 100, 0.1) == 0.1
    # linear from step 50 to 100: sigma (1 - (t - 50) / 50)
    assert nt.noise_scale(40, 100, 0.2, "linear", 0.5) == pytest.approx(0.2)
    assert nt.noise_scale(75, 100, 0.2, "linear", 0.5) == pytest.approx(0.1)
    assert nt.noise_scale(90, 100, 0.2, "linear", 0.5) == pytest.approx(0.04)
    assert nt.noise_scale(100, 100, 0.2, "linear", 0.5) == 0.0
    # cosine: sigma (1 + cos(pi p)) / 2
    assert nt.noise_scale(25, 100, 0.2, "cosine") == pytest.approx(
        0.1 * (1 + math.cos(math.pi / 4)))
    assert nt.noise_scale(50, 100, 0.2, "cosine") == pytest.approx(0.1)
    assert nt.noise_scale(150, 100, 0.2, "cosine") == pytest.approx(0.0)
    values = [nt.noise_scale(t, 100, 0.3, "cosine", 0.2) for t in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    for bad in (dict(schedule="step"), dict(sigma=-1.0), dict(anneal_start=1.0)):
        args = {"step": 0, "total_steps": 10, "sigma": 0.1, **bad}
        with pytest.raises(ValueError):
            nt.noise_scale(**args)


def _tiny_asr():
    torch.manual_seed(0)
    tok = WordTokenizer(("a", "b", "c"))
    cfg = small_rnnt_config(tok.num_symbols, encoding_dim=32, time_reduction_input_dim=8,
                            num_heads=2, ffn_dim=32, num_layers=2, symbol_embedding_dim=8)
    return ASRModel(cfg), tok


def _toy_set(tok, n=12):
    g = torch.Generator().manual_seed(0)
    texts = (["a b", "c", "b b c", "a", "c a", "b"] * 4)[:n]
    feats = [torch.randn(30 + 9 * i, 80, generator=g) for i in range(len(texts))]
    return UtteranceSet(feats, texts, tok)


def test_noise_reaches_every_weight_matrix_of_the_emformer_rnnt_and_nothing_else():
    model, _ = _tiny_asr()
    expected = {n for n, p in model.named_parameters() if p.ndim >= 2}
    found = {t.name for t in nt.weight_matrices(model)}
    assert found == expected and len(found) > 10
    assert not any(n.endswith("bias") or "norm" in n for n in found)
    for m in nt.encoder_matrices(model):
        attach_mask(m, torch.ones_like(m.weight))
    masked = nt.weight_matrices(model)
    assert len(masked) == len(expected)
    assert sum(get_mask(t.module, t.attr) is not None for t in masked) == \
        len(nt.encoder_matrices(model)) == 2 * 5


def test_gradual_magnitude_pruning_is_monotone_and_exact():
    layer = nn.Linear(50, 40)
    attach_mask(layer, torch.ones_like(layer.weight))
    previous = torch.ones_like(layer.weight, dtype=torch.bool)
    for s in (0.1, 0.4, 0.7, 0.9):
        with torch.no_grad():  # training moves the weights between mask updates
            layer.parametrizations.weight.original.add_(0.05 * torch.randn(40, 50))
        nt.magnitude_prune([layer], s)
        kept = get_mask(layer).bool()
        assert int((~kept).sum()) == round(s * 2000)
        assert not torch.any(kept & ~previous), "a pruned weight came back"
        previous = kept


def test_finetune_prunes_to_the_target_is_deterministic_and_the_noise_matters():
    model, tok = _tiny_asr()
    data = _toy_set(tok)
    model.cmvn.fit(data.features)
    dense = {"state_dict": cpu_state_dict(model), "model_config": model.config.__dict__.copy(),
             "tokenizer": tok.state()}
    cfg = nt.CONFIGS.get("smoke", steps=4, batch_size=4, prune_every=2, sparsity=0.9)
    runs = [nt.finetune(dense, data, cfg, sparsity=0.9, sigma=s, seed=1, device="cpu",
                        show_progress=False) for s in (0.1, 0.1, 0.0)]
    for k, v in runs[0]["state_dict"].items():
        assert torch.equal(v, runs[1]["state_dict"][k]), k
    assert any(not torch.equal(v, runs[2]["state_dict"][k])
               for k, v in runs[0]["state_dict"].items())
    assert [h["sigma"] for h in runs[0]["history"]] == [0.1] * 4
    assert [h["sigma"] for h in runs[2]["history"]] == [0.0] * 4
    assert runs[0]["history"][-1]["sparsity"] == pytest.approx(0.9)
    model2 = nt.load_run_model(dense, {**runs[0], "sparsity": 0.9})
    for m in nt.encoder_matrices(model2):
        assert int((m.weight == 0).sum()) == round(0.9 * m.weight.numel())
    assert nt.pruned_fraction(model2) == pytest.approx(0.9, abs=1e-3)
    # the predictor and joiner are not pruned
    assert int((model2.rnnt.joiner.linear.weight == 0).sum()) == 0


def test_flatness_probe_matches_a_brute_force_perturbation():
    model, tok = _tiny_asr()
    data = _toy_set(tok, 6)
    model.cmvn.fit(data.features)
    model.eval()
    radii = (0.0, 0.1, 0.5)
    loss = nt.flatness_probe(model, data, radii, draws=2, seed=5)
    assert loss.shape == (3, 2) and torch.all(loss[0] == loss[0, 0])
    base = nt.mean_loss(model, data)
    assert loss[0, 0].item() == pytest.approx(base)
    # brute force: rebuild the direction of draw 1 and set W + r std(W) z by hand
    from lib.core import derive_seed

    clean = copy.deepcopy(model.state_dict())
    g = make_generator(derive_seed(5, "flatness-direction", 1))
    with torch.no_grad():
        for t in nt.weight_matrices(model):
            z = torch.randn(t.param.shape, generator=g)
            t.param.add_(0.5 * t.param.std() * z)
    assert nt.mean_loss(model, data) == pytest.approx(loss[2, 1].item(), rel=1e-6)
    model.load_state_dict(clean)
    assert nt.mean_loss(model, data) == pytest.approx(base)  # the probe restored the model


def _scratch_config(**kw):
    model, _ = _tiny_asr()
    return nt.CONFIGS.get("smoke", model=model.config, steps=6, batch_size=4, prune_every=2,
                          warmup_steps=1, **kw)


def _forward_spy(model):
    """Record the weight of one encoder matrix as each forward pass reads it."""
    layer = nt.encoder_matrices(model)[0]
    seen = []
    handle = layer.register_forward_pre_hook(lambda m, _: seen.append(m.weight.detach().clone()))
    return layer, seen, handle


def test_noise_is_applied_in_every_forward_and_never_left_in_the_weights():
    """A near-zero learning rate freezes the clean weights: the forward passes must see
    W + eps with std(eps) = sigma std(W) (noise applied), and the final weights must equal
    the initial ones (noise restored after every step, not accumulated)."""
    tok = WordTokenizer(("a", "b", "c"))
    data = _toy_set(tok)
    cfg = _scratch_config(lr=1e-12, sigma=0.3)
    model = nt.scratch_model(cfg, data, seed=0)
    initial = copy.deepcopy(model.state_dict())
    layer, seen, handle = _forward_spy(model)
    clean = layer.weight.detach().clone()
    out = nt.train_noisy(model, data, cfg, sparsity=0.0, sigma=0.3, seed=0, device="cpu",
                         show_progress=False)
    handle.remove()
    assert len(seen) == cfg.steps
    ratios = [float((w - clean).std() / clean.std()) for w in seen]
    assert all(r == pytest.approx(0.3, rel=0.15) for r in ratios), ratios
    assert not torch.equal(seen[0], seen[1])  # a fresh draw each step
    for k, v in out["state_dict"].items():
        torch.testing.assert_close(v, initial[k], rtol=0, atol=1e-6, msg=k)
    # without noise the forward reads the clean weights
    model = nt.scratch_model(cfg, data, seed=0)
    layer, seen, handle = _forward_spy(model)
    nt.train_noisy(model, data, cfg, sparsity=0.0, sigma=0.0, seed=0, device="cpu",
                   show_progress=False)
    handle.remove()
    assert all(torch.allclose(w, clean, atol=1e-6) for w in seen)


def test_a_sparse_run_is_exactly_sparse_and_stays_so_through_the_artifact_round_trip():
    tok = WordTokenizer(("a", "b", "c"))
    data = _toy_set(tok)
    cfg = _scratch_config(sparsity=0.9, sparsities=(0.0, 0.7, 0.9))
    for sparsity in (0.7, 0.9):
        model = nt.scratch_model(cfg, data, seed=1)
        run = nt.train_noisy(model, data, cfg, sparsity=sparsity, sigma=0.2, seed=1,
                             device="cpu", show_progress=False)
        assert run["history"][-1]["sparsity"] == pytest.approx(sparsity)
        loaded = nt.load_run_model(None, {**run, "sparsity": sparsity}, cfg)
        for m in nt.encoder_matrices(loaded):
            assert int((m.weight == 0).sum()) == round(sparsity * m.weight.numel())
        assert nt.pruned_fraction(loaded) == pytest.approx(sparsity, abs=2e-3)
        assert int((loaded.rnnt.joiner.linear.weight == 0).sum()) == 0  # joiner not pruned
        # the probe's perturbation keeps pruned weights at zero
        zeros = [m.weight == 0 for m in nt.encoder_matrices(loaded)]
        with nt.perturbed_weights(loaded, 0.5, generator=make_generator(0)):
            for m, z in zip(nt.encoder_matrices(loaded), zeros, strict=True):
                assert torch.all(m.weight[z] == 0)


def test_scratch_models_differ_by_seed_and_repeat_with_it():
    tok = WordTokenizer(("a", "b", "c"))
    data = _toy_set(tok)
    cfg = _scratch_config()
    a, b, c = (nt.scratch_model(cfg, data, seed=s).state_dict() for s in (0, 0, 1))
    assert all(torch.equal(v, b[k]) for k, v in a.items())
    assert any(not torch.equal(v, c[k]) for k, v in a.items() if v.is_floating_point())
    assert nt.CONFIGS.get("smoke", dropout=0.3).model_config.dropout == 0.3


def test_held_out_noise_snr_is_measured_over_speech_not_silence():
    from lib.asr.snr import add_noise_at_speech_snr, measured_snr_db

    rng = np.random.default_rng(0)
    speech = 0.3 * np.sin(np.arange(16000) * 0.05) * (1 + rng.standard_normal(16000) * 0.1)
    signal = np.concatenate([np.zeros(16000), speech, np.zeros(16000)])  # 2/3 silence
    region = slice(16000, 32000)
    for kind in ("white", "pink"):
        noisy = add_noise_at_speech_snr(signal, region, 5.0, kind, np.random.default_rng(1))
        assert measured_snr_db(signal, noisy, region) == pytest.approx(5.0, abs=1e-6)
        # the closed form: the same unit-power draw scaled by sqrt(P_speech / 10^(5/10))
        from lib.asr.corpus import make_noise
        unit = make_noise(signal.size, kind, np.random.default_rng(1))
        p_speech = np.mean(speech**2)
        np.testing.assert_allclose(noisy - signal, unit * np.sqrt(p_speech / 10 ** 0.5),
                                   rtol=1e-12, atol=1e-15)
        # over the whole file (torchaudio's add_noise convention) it would read 4.77 dB lower
        whole = 10 * np.log10(np.mean(signal**2) / np.mean((noisy - signal) ** 2))
        assert whole == pytest.approx(5.0 + 10 * np.log10(1 / 3), abs=1e-6)
    with pytest.raises(ValueError, match="empty"):
        add_noise_at_speech_snr(signal, slice(5, 5), 5.0, "white", rng)


def test_paired_relative_wer_and_verdicts_against_brute_force():
    rng = np.random.default_rng(0)
    words = rng.integers(1, 8, size=200).astype(float)
    base = [{"u": {"errors": rng.binomial(words.astype(int), 0.3).astype(float),
                   "words": words}} for _ in range(3)]
    better = [{"u": {"errors": np.floor(b["u"]["errors"] * 0.5), "words": words}}
              for b in base]
    iv = nt.paired_relative_wer(better, base, "u", n_boot=500)
    a = sum(m["u"]["errors"].sum() for m in better)
    b = sum(m["u"]["errors"].sum() for m in base)
    assert iv.estimate == pytest.approx((a - b) / b)
    assert iv.lo < iv.estimate < iv.hi < 0 and iv.n_seeds == 3 and iv.n_items == 200
    assert nt.judge(iv, -0.14) == "reproduced" and nt.judge(iv, None) == "detected"
    same = nt.paired_relative_wer(base, base, "u", n_boot=500)
    assert same.estimate == same.lo == same.hi == 0.0
    assert nt.judge(same, -0.14) == "not reproduced"
    assert nt.judge(same, None) == "inconclusive at this scale"
    assert nt.relative_improvement(0.10, 0.086) == pytest.approx(0.14)
    errors, n = nt.utterance_errors(["a b c", "a"], ["a c", "b b"])
    assert errors.tolist() == [1.0, 2.0] and n.tolist() == [3.0, 1.0]


def test_compare_pairs_every_level_and_the_control_and_records_them():
    cfg = nt.CONFIGS.get("smoke", sparsities=(0.0, 0.9))
    rng = np.random.default_rng(1)
    words = np.full(50, 4.0)
    roles = [r for r in nt.eval_split_names(cfg) if r not in ("dev", "train")]

    def scores(rate):
        return {r: {"errors": rng.binomial(4, rate, size=50).astype(float), "words": words}
                for r in roles}

    names = [c[0] for c in nt.conditions(cfg, 0.2, 0.3)]
    assert names == ["dense", "dense+noise", "sparse 90%", "sparse 90%+noise",
                     "dense+dropout 0.3"]
    rates = {"dense": 0.3, "dense+noise": 0.3, "sparse 90%": 0.5, "sparse 90%+noise": 0.2,
             "dense+dropout 0.3": 0.1}
    table = {(n, s): scores(rates[n]) for n in names for s in (0, 1)}
    rows = nt.compare(cfg, table, [0, 1], 0.2, 0.3)
    assert len(rows) == 3 * len(roles)
    by = {(r["comparison"], r["role"]): r for r in rows}
    sparse = by[("noise vs plain, sparse 90%", "unseen")]
    assert sparse["estimate"] < -0.4 and sparse["verdict"] == "reproduced"
    assert sparse["paper_effect"] == -0.14
    assert by[("noise vs plain, sparse 90%", "unseen_noisy")]["paper_effect"] == -0.12
    assert by[("noise vs plain, sparse 90%", "seen")]["paper_effect"] is None
    assert by[("control: dropout vs plain, dense", "unseen")]["verdict"] == "detected"
    metrics = nt.comparison_metrics(rows)
    judged = [c.evaluate(metrics) for c in nt.CLAIMS]
    assert [j.verdict for j in judged] == ["reproduced", "reproduced"]
    assert "relwer_dropout_vs_plain_s0_unseen_estimate" in metrics


def test_config_validation():
    with pytest.raises(ValueError, match="noise_kind"):
        nt.CONFIGS.get("smoke", noise_kind="uniform")
    with pytest.raises(ValueError, match="sigma"):
        nt.CONFIGS.get("smoke", sigma=0.0)
    with pytest.raises(ValueError, match="start"):
        nt.CONFIGS.get("smoke", start="pretrained")
    with pytest.raises(ValueError, match="sparsities"):
        nt.CONFIGS.get("smoke", sparsities=(0.0, 0.7))
    with pytest.raises(ValueError, match="valid knobs"):
        nt.CONFIGS.get("smoke", sigmas=(0.1,))
    with pytest.raises(ValueError, match="noise kind"):
        nt.sample_weight_noise(torch.ones(2, 2), 0.1, "uniform", make_generator(0))
    tut = nt.CONFIGS["tutorial"]
    assert 0.0 in tut.sparsities and tut.sparsity == 0.9 and tut.n_seeds == 3
    assert nt.CONFIGS["full"].sparsities == (0.0, 0.7, 0.9)
    assert len(tut.sweep_sigmas) == len(tut.sweep_dropouts)  # equal tuning effort
    assert min(tut.sweep_sigmas) == 0.05 and max(tut.sweep_sigmas) == 0.8
    assert tut.corpus.n_test == 1000 and tut.start == "scratch"


def test_summary_table_means_and_per_seed_values():
    rows = [{"condition": c, "sparsity": sp, "sigma": sg, "seed": s, "measured_sparsity": sp,
             "wer_unseen": w, "wer_seen": w / 2}
            for (c, sp, sg, _), ws in zip(nt.conditions(nt.CONFIGS["smoke"], 0.1),
                                          [(0.2, 0.3), (0.1, 0.3), (0.4, 0.4), (0.3, 0.5)],
                                          strict=True)
            for s, w in enumerate(ws)]
    table = nt.summary_table(rows, ["unseen", "seen"])
    assert table.loc["dense", "unseen mean"] == pytest.approx(25.0)
    assert table.loc["dense", "unseen per seed"] == "20.0 / 30.0"
    assert table.loc["sparse 90%", "sparsity"] == pytest.approx(0.9)


def test_runs_and_scores_survive_the_artifact_cache_round_trip(tmp_path):
    """Built once, then read back (weights-only loading) without a rebuild: the sparse
    run's masks are exact after the round trip, and its per-utterance scores pair up."""
    import warnings

    from lib.core import ArtifactCache

    cache = ArtifactCache(tmp_path)
    cfg = nt.CONFIGS["smoke"]
    kw = {"sparsity": 0.9, "sigma": 0.2, "seed": 0, "device": "cpu", "cache": cache}
    first = nt.run_scores(cfg, roles=["dev", "unseen"], **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "unreadable; rebuilding it" would raise here
        again = nt.run_scores(cfg, roles=["dev", "unseen"], **kw)
        run = nt.run_artifact(cfg, **kw)
    for role in ("dev", "unseen"):
        assert np.array_equal(np.asarray(first[role]["errors"]), np.asarray(again[role]["errors"]))
        assert np.asarray(again[role]["errors"]).sum() / np.asarray(
            again[role]["words"]).sum() == pytest.approx(again[role]["wer"])
    assert run["measured_sparsity"] == pytest.approx(0.9, abs=2e-3)
    model = nt.load_run_model(None, run, cfg)
    for m in nt.encoder_matrices(model):
        assert int((m.weight == 0).sum()) == round(0.9 * m.weight.numel())


def test_noise_verdicts_are_inconclusive_while_the_positive_control_fails():
    """The same strong noise gain as above, but dropout no better than plain: the set-up
    has not shown it can detect a regulariser, so neither the table's nor the claims'
    verdict may read "reproduced" (nor "not reproduced")."""
    cfg = nt.CONFIGS.get("smoke", sparsities=(0.0, 0.9))
    rng = np.random.default_rng(1)
    words = np.full(50, 4.0)
    roles = [r for r in nt.eval_split_names(cfg) if r not in ("dev", "train")]
    names = [c[0] for c in nt.conditions(cfg, 0.2, 0.3)]
    rates = {"dense": 0.3, "dense+noise": 0.3, "sparse 90%": 0.5, "sparse 90%+noise": 0.2,
             "dense+dropout 0.3": 0.3}
    table = {(n, s): {r: {"errors": rng.binomial(4, rates[n], size=50).astype(float),
                          "words": words} for r in roles} for n in names for s in (0, 1)}
    rows = nt.compare(cfg, table, [0, 1], 0.2, 0.3)
    by = {(r["comparison"], r["role"]): r for r in rows}
    assert by[("control: dropout vs plain, dense", "unseen")]["verdict"] != "detected"
    sparse = by[("noise vs plain, sparse 90%", "unseen")]
    assert sparse["hi"] < 0 and sparse["ungated_verdict"] == "reproduced"
    assert sparse["verdict"] == "inconclusive at this scale"
    assert all(r["verdict"] == "inconclusive at this scale" for r in rows
               if r["sparsity"] is not None)
    judged = [c.evaluate(nt.comparison_metrics(rows)) for c in nt.CLAIMS]
    assert [j.verdict for j in judged] == ["inconclusive at this scale"] * 2
    assert all(nt.CONTROL_FAILED in j.ours and "(reproduced)" in j.ours for j in judged)
    # without the control's interval in the record, the claims are not measured
    partial = {k: v for k, v in nt.comparison_metrics(rows).items()
               if not k.startswith(nt.CONTROL_PREFIX)}
    assert [c.evaluate(partial).verdict for c in nt.CLAIMS] == ["not measured"] * 2
