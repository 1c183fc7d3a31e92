"""RNN-T training: length buckets, exact resume, and the shared dense model artifact."""

import torch

from lib.asr import (
    DENSE_RECIPES,
    BucketBatches,
    CharTokenizer,
    StepBatchLoader,
    TrainConfig,
    UtteranceSet,
    WordTokenizer,
    dense_asr,
    dense_asr_cached,
    evaluate_wer,
    small_rnnt_config,
    train_asr,
)
from lib.asr.model import ASRModel
from lib.asr.training import lr_factor


def test_bucket_batches_partition_each_epoch_and_group_similar_lengths():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(20, 400, (103,), generator=g).tolist()
    a, b = BucketBatches(lengths, 8, seed=5), BucketBatches(lengths, 8, seed=5)
    seq = [a.indices(s).tolist() for s in range(40)]
    assert [b.indices(s).tolist() for s in reversed(range(40))][::-1] == seq
    epoch0 = [i for s in range(a.per_epoch) for i in seq[s]]
    assert len(epoch0) == len(set(epoch0)) == 12 * 8
    spread = [max(lengths[i] for i in s) / min(lengths[i] for i in s) for s in seq[:12]]
    g2 = torch.Generator().manual_seed(1)
    rand = [torch.randperm(103, generator=g2)[:8].tolist() for _ in range(12)]
    rand_spread = [max(lengths[i] for i in s) / min(lengths[i] for i in s) for s in rand]
    assert sum(spread) < sum(rand_spread) / 2, "buckets must hold similar lengths"
    assert seq[:12] != seq[12:24], "each epoch is reshuffled"


def test_warmup_then_cosine_learning_rate():
    cfg = TrainConfig(steps=100, warmup_steps=10, final_lr_fraction=0.1)
    assert lr_factor(0, cfg) == 0.1 and lr_factor(9, cfg) == 1.0
    assert lr_factor(10, cfg) == 1.0 and abs(lr_factor(100, cfg) - 0.1) < 1e-12
    assert abs(lr_factor(55, cfg) - 0.55) < 1e-12  # halfway down the cosine


def _toy_set():
    g = torch.Generator().manual_seed(0)
    tok = WordTokenizer(("a", "b", "c"))
    texts = ["a b", "c", "b b c", "a", "c a", "b"] * 2
    feats = [torch.randn(30 + 9 * i, 80, generator=g) for i in range(len(texts))]
    return UtteranceSet(feats, texts, tok), tok


def test_training_stops_and_resumes_exactly(tmp_path):
    data, tok = _toy_set()
    cfg = TrainConfig(steps=6, batch_size=4, warmup_steps=2, ckpt_every=2)
    mcfg = small_rnnt_config(tok.num_symbols, encoding_dim=32, time_reduction_input_dim=8,
                             num_heads=2, ffn_dim=32, num_layers=1, symbol_embedding_dim=8)

    def fresh():
        torch.manual_seed(0)
        return ASRModel(mcfg)

    ref = fresh()
    ref_result = train_asr(ref, data, cfg, seed=1, show_progress=False)
    part = fresh()
    train_asr(part, data, cfg, seed=1, ckpt_dir=tmp_path, run_key="toy-asr", stop_after=3,
              show_progress=False)
    resumed = fresh()
    torch.manual_seed(123)  # the checkpoint restores the generators, not this
    result = train_asr(resumed, data, cfg, seed=1, ckpt_dir=tmp_path, run_key="toy-asr",
                       show_progress=False)
    assert result.resumed_from == 3
    for p, q in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    assert [h["loss"] for h in result.history] == [h["loss"] for h in ref_result.history]
    assert evaluate_wer(resumed, data, tok) >= 0.0


def test_shared_dense_model_is_built_once_and_reloads():
    recipe = DENSE_RECIPES["smoke"]
    model, tok, artifact = dense_asr("smoke", seed=0)
    assert dense_asr_cached(recipe, 0)
    assert set(artifact) >= {"state_dict", "model_config", "tokenizer", "history", "wer",
                             "train_seconds", "steps"}
    assert artifact["steps"] == recipe.train.steps and tok.num_symbols == 12
    again, _, _ = dense_asr("smoke", seed=0)
    for p, q in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(model.cmvn.mean, torch.zeros(80)), "CMVN statistics were fitted"


def test_step_loader_prefetches_the_same_batches_and_restarts_on_resume():
    data, _ = _toy_set()
    sampler = BucketBatches(data.lengths(), 4, seed=2)
    plain = StepBatchLoader(data, sampler, 8)
    ahead = StepBatchLoader(data, sampler, 8, num_workers=2)
    for step in [0, 1, 2, 5, 6, 7]:  # a jump (resume) restarts the workers at that step
        a, b = plain.get(step), ahead.get(step)
        assert torch.equal(a.features, b.features) and torch.equal(a.targets, b.targets)
    half = StepBatchLoader(data, sampler, 8, rank=1, world=2)
    assert half.indices(3).tolist() == sampler.indices(3)[2:].tolist()


def test_one_training_run_on_a_librispeech_fixture_tree(tmp_path):
    from lib.asr.librispeech import LibriSpeechSet
    from tests.fixtures.formats import write_librispeech as write_fixture

    write_fixture(tmp_path, "train-clean-100")
    tok = CharTokenizer()
    data = LibriSpeechSet(tmp_path, ["train-clean-100"], tok)
    torch.manual_seed(0)
    model = ASRModel(small_rnnt_config(tok.num_symbols, encoding_dim=32,
                                       time_reduction_input_dim=8, num_heads=2, ffn_dim=32,
                                       num_layers=1, symbol_embedding_dim=8))
    model.cmvn.fit([data[i][0] for i in range(len(data))])
    cfg = TrainConfig(steps=3, batch_size=2, warmup_steps=1, num_workers=1)
    result = train_asr(model, data, cfg, seed=0, show_progress=False)
    assert result.steps == 3 and all(torch.isfinite(torch.tensor(h["loss"]))
                                     for h in result.history)


def test_a_tiny_recogniser_memorises_four_utterances_and_greedy_decoding_returns_them():
    """Train, then decode: the loss, the model, the decoder and the tokenizer agree."""
    g = torch.Generator().manual_seed(0)
    tok = WordTokenizer(("a", "b", "c"))
    texts = ["a b", "c c", "b a c", "c"]
    data = UtteranceSet([torch.randn(40 + 12 * i, 80, generator=g) for i in range(4)], texts,
                        tok)
    torch.manual_seed(0)
    model = ASRModel(small_rnnt_config(tok.num_symbols, encoding_dim=32,
                                       time_reduction_input_dim=16, num_heads=2, ffn_dim=64,
                                       num_layers=1, symbol_embedding_dim=16, dropout=0.0))
    model.cmvn.fit(data.features)
    assert evaluate_wer(model, data, tok) > 0.5  # untrained: nothing right
    cfg = TrainConfig(steps=300, batch_size=4, lr=3e-3, warmup_steps=10, decay="constant",
                      specaugment=(0, 0, 0, 0))
    train_asr(model, data, cfg, seed=0, show_progress=False)
    wer, hyps = evaluate_wer(model.eval(), data, tok, return_hypotheses=True)
    assert hyps == texts and wer == 0.0
