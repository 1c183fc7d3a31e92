"""Noise at a signal-to-noise ratio measured over the *speech*, not over the silence around
it, as the digit corpus mixes its own noise (``lib.asr.corpus.synthesize_split``) and as
speech corpora state SNR (the active speech level, ITU-T P.56, not the file's mean power).

``torchaudio.functional.add_noise`` measures the signal power over the whole signal, so
leading and trailing silence lower it and make the noise weaker than the stated SNR; here
the power comes from the samples the caller marks as speech.
"""

from __future__ import annotations

import numpy as np

from .corpus import make_noise


def speech_power(signal: np.ndarray, speech: slice | np.ndarray) -> float:
    """Mean power of ``signal[speech]`` (``speech``: a slice or a boolean mask)."""
    part = np.asarray(signal, dtype=np.float64)[speech]
    if part.size == 0:
        raise ValueError("the speech region is empty")
    return float(np.mean(part**2))


def add_noise_at_speech_snr(signal: np.ndarray, speech: slice | np.ndarray, snr_db: float,
                            kind: str, rng: np.random.Generator) -> np.ndarray:
    """``signal + n`` over the whole signal, with ``n`` of ``make_noise``'s colour scaled so
    that ``10 log10(P_speech / P_noise) = snr_db`` (float64 out)."""
    signal = np.asarray(signal, dtype=np.float64)
    noise = make_noise(signal.size, kind, rng)  # unit power
    return signal + noise * np.sqrt(speech_power(signal, speech) / 10.0 ** (snr_db / 10.0))


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray, speech: slice | np.ndarray) -> float:
    """``10 log10(P_speech(clean) / P(noisy - clean))``, the noise power over all samples."""
    noise = np.asarray(noisy, dtype=np.float64) - np.asarray(clean, dtype=np.float64)
    return float(10 * np.log10(speech_power(clean, speech) / np.mean(noise**2)))
