"""Acoustic features: 80-dim log-mel, global mean/variance normalisation, SpecAugment.

* log-mel: ``log(Mel(|STFT(x)|^2) + 1e-6)`` with a 25 ms window (``n_fft = 400``) every
  10 ms (``hop = 160``) at 16 kHz, as torchaudio's Emformer RNN-T recipe;
* global CMVN: ``(f - mu) / sigma`` with per-dimension statistics of the training set;
* SpecAugment (Park et al., 2019): random frequency and time masks during training only.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

N_MELS, N_FFT, HOP = 80, 400, 160


class LogMel(nn.Module):
    """Waveform ``(samples,)`` or ``(B, samples)`` -> log-mel ``([B,] frames, 80)``."""

    def __init__(self, sample_rate: int = 16000, n_mels: int = N_MELS, n_fft: int = N_FFT,
                 hop_length: int = HOP):
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft,
                                                        hop_length=hop_length, n_mels=n_mels)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dtype == torch.int16:
            waveform = waveform.float() / 32768.0
        return torch.log(self.mel(waveform) + 1e-6).transpose(-1, -2)


_LOGMEL: dict[int, LogMel] = {}


def log_mel(waveform: torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
    """Log-mel features ``(frames, 80)`` of one waveform (int16 or float in [-1, 1])."""
    if sample_rate not in _LOGMEL:
        _LOGMEL[sample_rate] = LogMel(sample_rate)
    with torch.no_grad():
        return _LOGMEL[sample_rate](waveform)


class GlobalCMVN(nn.Module):
    """``(f - mean) / std`` per feature dimension, statistics stored as buffers."""

    def __init__(self, dim: int = N_MELS):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, features: Iterable[torch.Tensor]) -> GlobalCMVN:
        """Statistics over all frames of ``features`` (each ``(frames, dim)``), in float64."""
        total = None
        count = 0
        for f in features:
            f = f.double()
            s = torch.stack([f.sum(0), (f * f).sum(0)])
            total = s if total is None else total + s
            count += f.shape[0]
        if not count:
            raise ValueError("cannot fit CMVN statistics on zero frames")
        mean = total[0] / count
        var = (total[1] / count - mean**2).clamp_min(1e-10)
        self.mean.copy_(mean.float())
        self.std.copy_(var.sqrt().float())
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std


class SpecAugment(nn.Module):
    """Frequency and time masking (torchaudio's transforms) applied in ``train()`` mode only.

    Masks are drawn per utterance (``iid_masks``); the time mask never exceeds
    ``max_time_fraction`` of the utterance.
    """

    def __init__(self, freq_mask: int = 27, n_freq_masks: int = 2, time_mask: int = 40,
                 n_time_masks: int = 2, max_time_fraction: float = 0.2):
        super().__init__()
        import torchaudio

        self.n_freq_masks, self.n_time_masks = n_freq_masks, n_time_masks
        self.freq = torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True)
        self.time = torchaudio.transforms.TimeMasking(time_mask, iid_masks=True,
                                                      p=max_time_fraction)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, frames, dim)`` -> same shape, masked with zeros (the normalised mean)."""
        if not self.training or (self.n_freq_masks == 0 and self.n_time_masks == 0):
            return features
        x = features.transpose(1, 2).unsqueeze(1)  # (B, 1, dim, frames) as torchaudio expects
        for _ in range(self.n_freq_masks):
            x = self.freq(x)
        for _ in range(self.n_time_masks):
            x = self.time(x)
        return x.squeeze(1).transpose(1, 2)
