"""An embedded speech corpus: connected digit strings (a TIDIGITS-like task), synthesised.

Each utterance is a string of 1-7 spoken digits ("zero" and "oh" both stand for 0, as in
TIDIGITS: eleven words). It is spoken by one *speaker*, an espeak-ng voice made of an
accent (``en-us``, ``en-gb-scotland``, ...) and a voice variant (``m3``, ``f2``, ``klatt``:
timbre, formants, breathiness), at a random speaking rate and pitch, with random leading and
trailing silence, and additive noise at a signal-to-noise ratio drawn from a chosen list.

The split is **by voice variant**: train, dev and test use disjoint variants, so dev and test
hold speakers never heard in training (``test_seen`` holds new utterances from the training
speakers, to separate the speaker gap from plain generalisation). The corpus is a function
of ``(config, seed)`` (espeak-ng runs in a fresh process per split, see
``lib.asr.espeak``) and is cached in the artifact cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lib.core import ArtifactCache, derive_seed

from . import espeak

#: The eleven words of TIDIGITS; "oh" and "zero" are both 0.
DIGIT_WORDS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight",
               "nine")
SPLITS = ("train", "dev", "test", "test_seen")


@dataclass(frozen=True)
class DigitCorpusConfig:
    """What to synthesise. Sizes are utterance counts per split."""

    n_train: int
    n_dev: int
    n_test: int
    n_test_seen: int = 0
    accents: tuple[str, ...] = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029",
                                "en-us-nyc")
    train_variants: tuple[str, ...] = ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3",
                                       "klatt", "klatt3")
    dev_variants: tuple[str, ...] = ("m5", "f4", "klatt4")
    test_variants: tuple[str, ...] = ("m6", "f5", "klatt2", "m8")
    min_digits: int = 1
    max_digits: int = 7
    rate_wpm: tuple[int, int] = (130, 230)
    pitch: tuple[int, int] = (25, 75)
    pitch_range: tuple[int, int] = (30, 80)
    silence_s: tuple[float, float] = (0.05, 0.25)
    #: SNRs in dB drawn uniformly per utterance; ``math.inf`` means clean.
    snr_db: tuple[float, ...] = (math.inf, 30.0, 20.0, 10.0)
    #: noise colours drawn uniformly per utterance: "white" or "pink"
    noise_kinds: tuple[str, ...] = ("white", "pink")
    sample_rate: int = 16000

    def __post_init__(self):
        for name in ("n_train", "n_dev", "n_test", "n_test_seen"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(f"need 1 <= min_digits <= max_digits, got {self.min_digits}, "
                             f"{self.max_digits}")
        groups = {"train": self.train_variants, "dev": self.dev_variants,
                  "test": self.test_variants}
        for a, va in groups.items():
            if not va:
                raise ValueError(f"{a}_variants is empty")
            for b, vb in groups.items():
                if a < b and set(va) & set(vb):
                    raise ValueError(f"{a} and {b} share voice variants {sorted(set(va) & set(vb))}"
                                     f": the split must hold unseen speakers")
        for kind in self.noise_kinds:
            if kind not in NOISE_KINDS:
                raise ValueError(f"unknown noise kind {kind!r}; valid kinds are {NOISE_KINDS}")
        if not self.snr_db:
            raise ValueError("snr_db needs at least one value (math.inf for clean)")

    def variants_of(self, split: str) -> tuple[str, ...]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits are {SPLITS}")
        return {"train": self.train_variants, "test_seen": self.train_variants,
                "dev": self.dev_variants, "test": self.test_variants}[split]

    def size_of(self, split: str) -> int:
        return {"train": self.n_train, "dev": self.n_dev, "test": self.n_test,
                "test_seen": self.n_test_seen}[split]


NOISE_KINDS = ("white", "pink")


def make_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise: white (flat spectrum) or pink (power ~ 1/f, shaped in frequency)."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; valid kinds are {NOISE_KINDS}")
    white = rng.standard_normal(n)
    if kind == "pink":
        spectrum = np.fft.rfft(white)
        f = np.arange(spectrum.size, dtype=np.float64)
        f[0] = 1.0
        white = np.fft.irfft(spectrum / np.sqrt(f), n=n)
    return white / np.sqrt(np.mean(white**2) + 1e-12)


def add_noise(signal: np.ndarray, snr_db: float, kind: str,
              rng: np.random.Generator) -> np.ndarray:
    """``signal + noise`` with noise power ``P_signal / 10^(snr_db / 10)`` (float64 out):
    ``make_noise``'s colour, scaled by ``torchaudio.functional.add_noise``."""
    from torchaudio.functional import add_noise as mix

    signal = np.asarray(signal, dtype=np.float64)
    if math.isinf(snr_db) and snr_db > 0:
        return signal.copy()
    noise = torch.from_numpy(make_noise(signal.size, kind, rng))
    snr = torch.tensor([float(snr_db)], dtype=torch.float64)
    return mix(torch.from_numpy(signal)[None], noise[None], snr)[0].numpy()


def utterance_plan(config: DigitCorpusConfig, split: str, seed: int) -> list[dict[str, Any]]:
    """What each utterance of ``split`` says and how (text, voice, rate, pitch, noise...)."""
    rng = np.random.default_rng(derive_seed(seed, "digit-corpus", split))
    speakers = [(a, v) for v in config.variants_of(split) for a in config.accents]
    plan = []
    for i in range(config.size_of(split)):
        n_digits = int(rng.integers(config.min_digits, config.max_digits + 1))
        words = [DIGIT_WORDS[int(rng.integers(len(DIGIT_WORDS)))] for _ in range(n_digits)]
        accent, variant = speakers[int(rng.integers(len(speakers)))]
        plan.append({
            "text": " ".join(words), "voice": f"{accent}+{variant}",
            "speaker": f"{accent}+{variant}",
            "rate": int(rng.integers(config.rate_wpm[0], config.rate_wpm[1] + 1)),
            "pitch": int(rng.integers(config.pitch[0], config.pitch[1] + 1)),
            "pitch_range": int(rng.integers(config.pitch_range[0], config.pitch_range[1] + 1)),
            "lead_s": float(rng.uniform(*config.silence_s)),
            "trail_s": float(rng.uniform(*config.silence_s)),
            "snr_db": float(config.snr_db[int(rng.integers(len(config.snr_db)))]),
            "noise": config.noise_kinds[int(rng.integers(len(config.noise_kinds)))],
            "noise_seed": derive_seed(seed, "noise", split, i),
        })
    return plan


def synthesize_split(config: DigitCorpusConfig, split: str, seed: int) -> dict[str, Any]:
    """Synthesise one split: int16 waveforms at ``config.sample_rate`` and their metadata."""
    from scipy.signal import resample_poly

    plan = utterance_plan(config, split, seed)
    if not plan:
        return {"audio": [], "text": [], "speaker": [], "snr_db": [], "rate": [], "pitch": []}
    raw, raw_rate = espeak.synthesize_batch(plan)
    up, down = config.sample_rate // math.gcd(config.sample_rate, raw_rate), \
        raw_rate // math.gcd(config.sample_rate, raw_rate)
    audio = []
    for item, samples in zip(plan, raw, strict=True):
        # polyphase resampling (22050 -> 16000 Hz is 320/441): exact rational, fast
        wave = resample_poly(samples.astype(np.float64) / 32768.0, up, down)
        lead = np.zeros(int(item["lead_s"] * config.sample_rate))
        trail = np.zeros(int(item["trail_s"] * config.sample_rate))
        speech = np.concatenate([lead, wave, trail])
        # the SNR is measured against the speech power, not the padded silence
        speech_power = np.mean(wave**2)
        rng = np.random.default_rng(item["noise_seed"])
        if not math.isinf(item["snr_db"]):
            noise = make_noise(speech.size, item["noise"], rng)
            speech = speech + noise * np.sqrt(speech_power / 10.0 ** (item["snr_db"] / 10.0))
        pcm = np.clip(np.round(speech * 32768.0), -32768, 32767).astype(np.int16)
        audio.append(torch.from_numpy(pcm))
    return {"audio": audio, "text": [p["text"] for p in plan],
            "speaker": [p["speaker"] for p in plan], "snr_db": [p["snr_db"] for p in plan],
            "rate": [p["rate"] for p in plan], "pitch": [p["pitch"] for p in plan]}


def build_digit_corpus(config: DigitCorpusConfig, seed: int = 0) -> dict[str, Any]:
    """The corpus (uncached): ``{split: {...}, "sample_rate": ..., "words": DIGIT_WORDS}``."""
    corpus: dict[str, Any] = {s: synthesize_split(config, s, seed) for s in SPLITS}
    corpus["sample_rate"] = config.sample_rate
    corpus["words"] = list(DIGIT_WORDS)
    return corpus


def digit_corpus(config: DigitCorpusConfig, seed: int = 0,
                 cache: ArtifactCache | None = None) -> dict[str, Any]:
    """The corpus from the artifact cache (synthesised once per ``(config, seed)``)."""
    cache = cache or ArtifactCache()
    return cache.get_or_create("digit-corpus", {"config": config, "seed": seed},
                               lambda: build_digit_corpus(config, seed))


def corpus_hours(split: dict[str, Any], sample_rate: int) -> float:
    """Total duration of a split in hours."""
    return sum(int(a.numel()) for a in split["audio"]) / sample_rate / 3600.0
