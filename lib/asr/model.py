"""The streaming Emformer RNN-T of torchaudio, with its front end and the RNN-T loss.

Model (Shi et al., 2021; Graves, 2012): log-mel frames ``x_1..T`` go through a linear layer,
a time reduction that stacks ``stride`` frames, and an Emformer (a transformer that attends
within segments of ``segment_length`` frames, ``right_context_length`` frames of look-ahead
and ``left_context_length`` frames of history), giving encodings ``f_t``. An LSTM predictor
reads the previous labels ``y_<u`` and gives ``g_u``. The joiner gives logits
``z_{t,u} = W tanh(f_t + g_u)`` (torchaudio: ``Linear(ReLU(f_t + g_u))``) over labels and
the blank. The RNN-T loss is ``-log P(y | x)`` summed over all monotonic alignments
(``torchaudio.functional.rnnt_loss``, which takes raw logits and needs the logits' time
axis to equal the largest output length exactly).

Input convention of torchaudio's Emformer: a batch of features ``(B, T, 80)`` is padded on
the right with ``right_context_length`` (input-frame units) frames, and ``lengths`` count the
valid frames *without* that padding. We also pad every utterance to whole segments
(``ASRModel.encoder_input``), in training and decoding alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .features import N_MELS, GlobalCMVN, SpecAugment


@dataclass(frozen=True)
class RNNTModelConfig:
    """Arguments of ``torchaudio.models.emformer_rnnt_model`` (transformer_* shortened)."""

    num_symbols: int
    input_dim: int = N_MELS
    encoding_dim: int = 128
    segment_length: int = 16
    right_context_length: int = 4
    time_reduction_input_dim: int = 32
    time_reduction_stride: int = 4
    num_heads: int = 4
    ffn_dim: int = 512
    num_layers: int = 3
    dropout: float = 0.1
    left_context_length: int = 30
    max_memory_size: int = 0
    symbol_embedding_dim: int = 64
    num_lstm_layers: int = 1
    lstm_dropout: float = 0.0

    def __post_init__(self):
        if self.num_symbols < 2:
            raise ValueError(f"num_symbols must be >= 2 (labels + blank), got {self.num_symbols}")
        if self.segment_length % self.time_reduction_stride or \
                self.right_context_length % self.time_reduction_stride:
            raise ValueError("segment_length and right_context_length must be multiples of "
                             f"time_reduction_stride ({self.time_reduction_stride})")

    @property
    def emformer_dim(self) -> int:
        """Width of the Emformer layers: stacked frames after time reduction."""
        return self.time_reduction_input_dim * self.time_reduction_stride

    def algorithmic_latency_ms(self, hop_ms: float = 10.0) -> float:
        """Look-ahead a streaming decoder must wait for: one segment plus right context."""
        return (self.segment_length + self.right_context_length) * hop_ms


def small_rnnt_config(num_symbols: int, **overrides: Any) -> RNNTModelConfig:
    """A small Emformer RNN-T for CPU work: 3 layers of width 128, 4 heads, FFN 512."""
    return RNNTModelConfig(num_symbols=num_symbols, **overrides)


def base_rnnt_config(num_symbols: int = 4097) -> RNNTModelConfig:
    """``torchaudio.models.emformer_rnnt_base``'s configuration (76.7 M parameters with
    4097 symbols): 20 layers of width 512, 8 heads, FFN 2048, 3-layer LSTM predictor."""
    return RNNTModelConfig(
        num_symbols=num_symbols, input_dim=80, encoding_dim=1024, segment_length=16,
        right_context_length=4, time_reduction_input_dim=128, time_reduction_stride=4,
        num_heads=8, ffn_dim=2048, num_layers=20, dropout=0.1, left_context_length=30,
        max_memory_size=0, symbol_embedding_dim=512, num_lstm_layers=3, lstm_dropout=0.3)


def build_rnnt(config: RNNTModelConfig) -> nn.Module:
    """``torchaudio.models.emformer_rnnt_model`` with ``config``'s sizes."""
    from torchaudio.models import emformer_rnnt_model

    return emformer_rnnt_model(
        input_dim=config.input_dim, encoding_dim=config.encoding_dim,
        num_symbols=config.num_symbols, segment_length=config.segment_length,
        right_context_length=config.right_context_length,
        time_reduction_input_dim=config.time_reduction_input_dim,
        time_reduction_stride=config.time_reduction_stride,
        transformer_num_heads=config.num_heads, transformer_ffn_dim=config.ffn_dim,
        transformer_num_layers=config.num_layers, transformer_dropout=config.dropout,
        transformer_activation="gelu",
        transformer_left_context_length=config.left_context_length,
        transformer_max_memory_size=config.max_memory_size,
        transformer_weight_init_scale_strategy="depthwise", transformer_tanh_on_mem=True,
        symbol_embedding_dim=config.symbol_embedding_dim,
        num_lstm_layers=config.num_lstm_layers, lstm_layer_norm=True,
        lstm_layer_norm_epsilon=1e-3, lstm_dropout=config.lstm_dropout)


@dataclass
class Batch:
    """Padded log-mel features and label sequences of a mini-batch."""

    features: torch.Tensor        # (B, T, 80), unnormalised log-mel, zero-padded
    lengths: torch.Tensor         # (B,) valid frames
    targets: torch.Tensor         # (B, U) label ids, padded with 0
    target_lengths: torch.Tensor  # (B,)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device) for t in (self.features, self.lengths, self.targets,
                                              self.target_lengths)))

    def __len__(self) -> int:
        return int(self.lengths.shape[0])


def collate(features: list[torch.Tensor], targets: list[list[int]] | None = None) -> Batch:
    """Pad per-utterance features ``(T_i, 80)`` and label lists into a ``Batch``."""
    if not features:
        raise ValueError("cannot collate an empty batch")
    lengths = torch.tensor([f.shape[0] for f in features], dtype=torch.long)
    padded = features[0].new_zeros(len(features), int(lengths.max()), features[0].shape[1])
    for i, f in enumerate(features):
        padded[i, :f.shape[0]] = f
    targets = targets if targets is not None else [[] for _ in features]
    target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    labels = torch.zeros(len(targets), max(1, int(target_lengths.max())), dtype=torch.long)
    for i, t in enumerate(targets):
        labels[i, :len(t)] = torch.as_tensor(t, dtype=torch.long)
    return Batch(padded, lengths, labels, target_lengths)


class ASRModel(nn.Module):
    """Global CMVN + SpecAugment + Emformer RNN-T. ``forward(batch)`` is the RNN-T loss.

    ``self.rnnt`` is torchaudio's ``RNNT``; decoding lives in ``lib.asr.decode``.
    """

    def __init__(self, config: RNNTModelConfig, specaugment: SpecAugment | None = None):
        super().__init__()
        self.config = config
        self.cmvn = GlobalCMVN(config.input_dim)
        self.specaugment = specaugment if specaugment is not None else SpecAugment(0, 0, 0, 0)
        self.rnnt = build_rnnt(config)

    @property
    def blank(self) -> int:
        return self.config.num_symbols - 1

    def encoder_input(self, features: torch.Tensor,
                      lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalise (and augment in training), pad each utterance with zero frames to a
        whole number of segments, then append the right-context padding.

        Whole segments are what a streaming recogniser processes, and they make an
        utterance's encodings independent of the batch it sits in: torchaudio's Emformer
        takes the right context of a *partial* last segment from beyond the segment end,
        which would otherwise depend on the batch's padding.
        """
        x = self.specaugment(self.cmvn(features))
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        x = x * valid[..., None]
        seg = self.config.segment_length
        lengths = (lengths + seg - 1) // seg * seg
        x = nn.functional.pad(x, (0, 0, 0, int(lengths.max()) - x.shape[1]))
        x = nn.functional.pad(x, (0, 0, 0, self.config.right_context_length))
        return x, lengths

    def forward(self, batch: Batch, return_logits: bool = False):
        """Mean RNN-T loss (nats per utterance) of ``batch``; with ``return_logits`` also
        the joiner's logits ``(B, T', U + 1, V)`` and their valid lengths ``(B,)`` in time
        (for distillation on the alignment lattice)."""
        from torchaudio.functional import rnnt_loss

        x, lengths = self.encoder_input(batch.features, batch.lengths)
        # the predictor reads <blank> y_1 .. y_U (blank doubles as start-of-sequence)
        start = torch.full((len(batch), 1), self.blank, dtype=torch.long, device=x.device)
        predictor_in = torch.cat([start, batch.targets], dim=1)
        logits, logit_lengths, _, _ = self.rnnt(x, lengths, predictor_in, batch.target_lengths + 1)
        # rnnt_loss needs the time axis to equal max(logit_lengths) exactly
        logits = logits[:, :int(logit_lengths.max())].contiguous()
        targets = batch.targets[:, :max(1, int(batch.target_lengths.max()))]
        loss = rnnt_loss(logits, targets.int(), logit_lengths.int(),
                         batch.target_lengths.int(), blank=self.blank, reduction="mean")
        return (loss, logits, logit_lengths) if return_logits else loss


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's parameters."""
    return next(model.parameters()).device


def training_device() -> torch.device:
    """This process's device: its own GPU under an NCCL process group (``LOCAL_RANK``), else
    ``lib.core.select_device("auto")``."""
    import os

    import torch.distributed as dist

    from lib.core import select_device

    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(select_device("auto"))


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``state_dict`` with every tensor on the CPU (what artifacts store)."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}
