"""Emformer RNN-T: configs against torchaudio, the loss against a brute-force lattice sum,
greedy/beam/streaming decoding, front end."""

import math

import pytest
import torch

from lib.asr import (
    ASRModel,
    GlobalCMVN,
    SpecAugment,
    base_rnnt_config,
    beam_decode,
    collate,
    count_parameters,
    greedy_decode,
    real_time_factor,
    small_rnnt_config,
    stream_beam_decode,
    stream_greedy_decode,
)
from lib.asr.decode import greedy_init, greedy_search
from lib.asr.model import RNNTModelConfig

TINY = small_rnnt_config(6, encoding_dim=32, time_reduction_input_dim=8, num_heads=2,
                         ffn_dim=32, num_layers=2, symbol_embedding_dim=16, dropout=0.0)


def _model(seed=0, blank_bias=-0.5, config=TINY):
    torch.manual_seed(seed)
    model = ASRModel(config).eval()
    with torch.no_grad():  # an untrained model that emits some labels and some blanks
        model.rnnt.joiner.linear.bias[-1] += blank_bias
    return model


def _batch(lengths, labels, seed=0, dim=80):
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(n, dim, generator=g) for n in lengths]
    return collate(feats, labels)


def test_base_config_is_torchaudios_emformer_rnnt_base():
    from torchaudio.models import emformer_rnnt_base

    from lib.asr.model import build_rnnt

    with torch.device("meta"):
        ours = build_rnnt(base_rnnt_config(4097))
        reference = emformer_rnnt_base(num_symbols=4097)
    shapes = lambda m: [(n, tuple(p.shape)) for n, p in m.named_parameters()]  # noqa: E731
    assert shapes(ours) == shapes(reference)
    assert count_parameters(ours) == pytest.approx(76.7e6, rel=0.01)
    assert base_rnnt_config().algorithmic_latency_ms() == 200.0


def _rnnt_nll(log_probs, labels, blank):
    """-log P(y|x) by the forward recursion over the (T, U+1) lattice (Graves, 2012)."""
    T, U1, _ = log_probs.shape
    alpha = torch.full((T, U1), -math.inf, dtype=torch.float64)
    alpha[0, 0] = 0.0
    for t in range(T):
        for u in range(U1):
            if t == 0 and u == 0:
                continue
            terms = []
            if t > 0:
                terms.append(alpha[t - 1, u] + log_probs[t - 1, u, blank])
            if u > 0:
                terms.append(alpha[t, u - 1] + log_probs[t, u - 1, labels[u - 1]])
            alpha[t, u] = torch.logsumexp(torch.stack(terms), 0)
    return -(alpha[T - 1, U1 - 1] + log_probs[T - 1, U1 - 1, blank])


def _utterance_nll(model, features, labels):
    """-log P(y|x) of one utterance, encoded alone, by the brute-force lattice sum."""
    one = collate([features], [labels])
    x, lengths = model.encoder_input(one.features, one.lengths)
    start = torch.full((1, 1), model.blank)
    logits, logit_len, _, _ = model.rnnt(x, lengths, torch.cat([start, one.targets], 1),
                                         one.target_lengths + 1)
    T = int(logit_len[0])
    assert T == -(-features.shape[0] // 16) * 4  # whole segments, then time reduction 4
    return _rnnt_nll(logits[0, :T].double().log_softmax(-1), labels, model.blank)


@torch.no_grad()
def test_loss_equals_brute_force_lattice_sum_with_padding_and_blank_last():
    model = _model()
    labels = [[0, 3, 2], [4], [1, 1, 0, 2]]
    batch = _batch([64, 37, 52], labels)
    loss = model(batch)
    total = sum(_utterance_nll(model, batch.features[b, :int(batch.lengths[b])], lab)
                for b, lab in enumerate(labels))
    assert float(loss) == pytest.approx(float(total) / len(labels), rel=1e-5)


def test_encodings_do_not_depend_on_the_batch():
    model = _model()
    batch = _batch([64, 37, 52], [[0], [1], [2]])
    x, lengths = model.encoder_input(batch.features, batch.lengths)
    together, enc_lengths = model.rnnt.transcribe(x, lengths)
    for b in range(3):
        one = collate([batch.features[b, :int(batch.lengths[b])]])
        alone, alone_len = model.rnnt.transcribe(*model.encoder_input(one.features, one.lengths))
        assert int(alone_len[0]) == int(enc_lengths[b])
        assert torch.allclose(together[b, :int(alone_len[0])], alone[0], atol=1e-5)


def test_batched_greedy_equals_one_utterance_at_a_time_and_respects_max_symbols():
    model = _model(blank_bias=-3.0)
    batch = _batch([40, 75, 23, 64], [[1], [2], [3], [4]], seed=1)
    together = greedy_decode(model, batch, max_symbols=3)
    alone = [greedy_decode(model, collate([batch.features[b, :int(batch.lengths[b])]]),
                           max_symbols=3)[0] for b in range(4)]
    assert together == alone
    assert any(together) and all(len(h) <= 3 * -(-int(batch.lengths[b]) // 16) * 4
                                 for b, h in enumerate(together))
    assert all(0 <= k < model.blank for h in together for k in h)


def test_greedy_search_by_hand_on_a_fixed_joiner():
    """With a predictor-independent joiner the greedy result is the per-frame argmax rule."""
    model = _model()
    encodings = torch.randn(1, 12, TINY.encoding_dim)
    state = greedy_search(model, encodings, torch.tensor([12]), greedy_init(model, 1),
                          max_symbols=1)
    expected = []
    p = greedy_init(model, 1)
    for t in range(12):
        logits, _, _ = model.rnnt.join(encodings[:, t:t + 1], torch.tensor([1]),
                                       p.predictor_out, torch.tensor([1]))
        k = int(logits[0, 0, 0].argmax())
        if k != model.blank:
            expected.append(k)
            out, _, st = model.rnnt.predict(torch.tensor([[k]]), torch.tensor([1]),
                                            p.predictor_state)
            p.predictor_out, p.predictor_state = out, st
    assert state.hyps[0] == expected


@pytest.mark.parametrize("blank_bias", [-2.0, 0.0])
def test_streaming_decoding_equals_full_utterance_decoding(blank_bias):
    model = _model(seed=2, blank_bias=blank_bias)
    batch = _batch([70, 33, 96], [[1], [2], [3]], seed=3)
    full = greedy_decode(model, batch)
    assert stream_greedy_decode(model, batch) == full
    assert sum(map(len, full)) > 0
    beams = beam_decode(model, batch, beam_width=3)
    assert stream_beam_decode(model, batch, beam_width=3) == beams


def test_full_and_streamed_encoder_outputs_agree_numerically():
    model = _model()
    batch = _batch([80], [[1]])
    x, lengths = model.encoder_input(batch.features, batch.lengths)
    full, _ = model.rnnt.transcribe(x, lengths)
    seg, rc = TINY.segment_length, TINY.right_context_length
    state, parts = None, []
    for s in range(0, x.shape[1] - rc, seg):
        out, _, state = model.rnnt.transcribe_streaming(x[:, s:s + seg + rc],
                                                        torch.tensor([seg + rc]), state)
        parts.append(out)
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_cmvn_specaugment_and_rtf():
    feats = [torch.randn(30, 80) * 3 + 1, torch.randn(50, 80) * 3 + 1]
    cmvn = GlobalCMVN().fit(feats)
    allf = torch.cat(feats)
    assert torch.allclose(cmvn.mean, allf.mean(0), atol=1e-5)
    assert torch.allclose(cmvn.std, allf.std(0, unbiased=False), atol=1e-4)
    aug = SpecAugment(freq_mask=10, n_freq_masks=2, time_mask=5, n_time_masks=2)
    x = torch.randn(4, 60, 80)
    assert torch.equal(aug.eval()(x), x)
    torch.manual_seed(0)
    y = aug.train()(x)
    assert y.shape == x.shape and (y == 0).any() and not (x == 0).any()
    rtf = real_time_factor(_model(), [_batch([40, 30], [[1], [2]])])
    assert rtf["rtf"] > 0 and rtf["audio_s"] == pytest.approx(0.7)


def test_config_validation():
    with pytest.raises(ValueError, match="multiples"):
        RNNTModelConfig(num_symbols=12, segment_length=10)
    with pytest.raises(ValueError, match="num_symbols"):
        RNNTModelConfig(num_symbols=1)
