"""The synthesised digit corpus: deterministic, split by unseen voices, noise at the SNR asked."""

import math

import numpy as np
import pytest
import torch

from lib.asr import corpus as corpus_module
from lib.asr.corpus import (
    DIGIT_WORDS,
    DigitCorpusConfig,
    add_noise,
    build_digit_corpus,
    make_noise,
    utterance_plan,
)
from lib.asr.espeak import synthesize_batch

TINY = DigitCorpusConfig(n_train=6, n_dev=3, n_test=3, n_test_seen=2, max_digits=3,
                         accents=("en-us", "en-gb-scotland"))


def test_same_seed_gives_identical_audio_and_another_seed_differs():
    a = build_digit_corpus(TINY, seed=0)
    b = build_digit_corpus(TINY, seed=0)
    c = build_digit_corpus(TINY, seed=1)
    for split in ("train", "dev", "test", "test_seen"):
        assert a[split]["text"] == b[split]["text"]
        pairs = zip(a[split]["audio"], b[split]["audio"], strict=True)
        assert all(torch.equal(x, y) for x, y in pairs)
    assert a["train"]["text"] != c["train"]["text"]
    assert a["sample_rate"] == 16000 and all(x.dtype == torch.int16 for x in a["train"]["audio"])
    # an utterance lasts about what its words take to say (0.15-1 s a word plus silences)
    for audio, text in zip(a["train"]["audio"], a["train"]["text"], strict=True):
        seconds = audio.numel() / 16000
        assert 0.15 * len(text.split()) < seconds < 1.0 * len(text.split()) + 0.6


def test_espeak_synthesis_is_a_function_of_the_request_list():
    reqs = [{"text": "one two", "voice": v, "rate": 160, "pitch": 40} for v in
            ("en-us+f3", "en-us", "en-gb-scotland+klatt")]
    x, rate = synthesize_batch(reqs)
    y, _ = synthesize_batch(reqs)
    assert rate == 22050 and all(np.array_equal(p, q) for p, q in zip(x, y, strict=True))
    assert not np.array_equal(x[0][:1000], x[1][:1000]), "another voice must sound different"


def test_split_is_by_voice_variant_so_dev_and_test_speakers_are_unseen():
    cfg = DigitCorpusConfig(n_train=60, n_dev=30, n_test=30, n_test_seen=30)
    plans = {s: utterance_plan(cfg, s, seed=3) for s in ("train", "dev", "test", "test_seen")}
    variant = lambda p: p["voice"].split("+")[1]  # noqa: E731
    train_v = {variant(p) for p in plans["train"]}
    assert train_v <= set(cfg.train_variants)
    assert not train_v & {variant(p) for p in plans["test"]}
    assert not train_v & {variant(p) for p in plans["dev"]}
    assert {variant(p) for p in plans["test_seen"]} <= set(cfg.train_variants)
    for p in plans["train"]:
        words = p["text"].split()
        assert cfg.min_digits <= len(words) <= cfg.max_digits and set(words) <= set(DIGIT_WORDS)
        assert cfg.rate_wpm[0] <= p["rate"] <= cfg.rate_wpm[1]
        assert p["snr_db"] in cfg.snr_db


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_additive_noise_has_exactly_the_requested_snr(kind):
    rng = np.random.default_rng(0)
    signal = np.sin(np.linspace(0, 300, 8000)) * 0.3
    for snr in (0.0, 10.0, 25.0):
        noisy = add_noise(signal, snr, kind, rng)
        noise = noisy - signal
        measured = 10 * np.log10(np.mean(signal**2) / np.mean(noise**2))
        assert measured == pytest.approx(snr, abs=1e-6)
    assert np.array_equal(add_noise(signal, math.inf, kind, rng), signal)


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_torchaudio_mixing_equals_the_hand_written_scaling(kind):
    """add_noise (torchaudio.functional.add_noise) equals the former formula
    ``signal + make_noise * sqrt(P_signal / 10^(snr / 10))`` on the same noise draw."""
    signal = np.random.default_rng(3).standard_normal(5000) * 0.1
    for snr in (-5.0, 5.0, 30.0):
        ours = add_noise(signal, snr, kind, np.random.default_rng(4))
        noise = make_noise(signal.size, kind, np.random.default_rng(4))
        former = signal + noise * np.sqrt(np.mean(signal**2) / 10.0 ** (snr / 10.0))
        assert ours.dtype == np.float64 and np.allclose(ours, former, rtol=0, atol=1e-9)


def test_pink_noise_power_falls_as_one_over_frequency():
    power = np.zeros(4097)
    rng = np.random.default_rng(1)
    for _ in range(50):
        power += np.abs(np.fft.rfft(make_noise(8192, "pink", rng))) ** 2
    f = np.arange(power.size)
    band = (f > 10) & (f < 4000)
    slope = np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)
    white = sum(np.abs(np.fft.rfft(make_noise(8192, "white", rng))) ** 2 for _ in range(50))
    assert np.polyfit(np.log(f[band]), np.log(white[band]), 1)[0] == pytest.approx(0.0, abs=0.1)


def test_bad_requests_and_configs_are_clear_errors():
    with pytest.raises(ValueError, match="share voice variants"):
        DigitCorpusConfig(n_train=1, n_dev=1, n_test=1, train_variants=("m1",),
                          test_variants=("m1",))
    with pytest.raises(ValueError, match="unknown noise kind"):
        DigitCorpusConfig(n_train=1, n_dev=1, n_test=1, noise_kinds=("brown",))
    with pytest.raises(ValueError, match="no voice"):
        synthesize_batch([{"text": "one", "voice": "xx-nope"}])
    with pytest.raises(ValueError, match="rate must lie"):
        synthesize_batch([{"text": "one", "voice": "en-us", "rate": 20}])
    with pytest.raises(ValueError, match="unknown split"):
        TINY.variants_of("validation")


def test_corpus_is_cached_as_an_artifact(tmp_path):
    from lib.core import ArtifactCache

    cache = ArtifactCache(tmp_path)
    cfg = DigitCorpusConfig(n_train=2, n_dev=1, n_test=1, max_digits=2)
    first = corpus_module.digit_corpus(cfg, 0, cache)
    assert cache.contains("digit-corpus", {"config": cfg, "seed": 0}, code=[corpus_module])
    again = corpus_module.digit_corpus(cfg, 0, cache)
    assert torch.equal(first["train"]["audio"][0], again["train"]["audio"][0])
