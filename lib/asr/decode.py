"""Decoding an RNN-T: batched greedy search, beam search, and streaming (segment by segment).

Greedy RNN-T search: at each encoder frame ``t``, emit ``k = argmax_k z_{t,u,k}``; a label
advances the predictor (``u -> u + 1``) and the frame is read again (at most
``max_symbols`` labels per frame); the blank moves to frame ``t + 1``. The search state
(hypotheses, predictor output and LSTM state) is carried between calls, so the same code
decodes a whole utterance or one segment at a time.

Streaming: the Emformer encodes a segment of ``segment_length`` frames plus
``right_context_length`` frames of look-ahead, carrying its left context in a state
(``RNNT.transcribe_streaming``); greedy search (or ``RNNTBeamSearch.infer``) continues from
the previous segment's state. The streamed encodings equal the full-utterance ones (both see
utterances padded to whole segments, ``ASRModel.encoder_input``), hence so do the
hypotheses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .model import ASRModel, Batch, model_device


@dataclass
class GreedyState:
    """Per-utterance hypotheses plus the predictor's output and LSTM state for each."""

    hyps: list[list[int]]
    predictor_out: torch.Tensor            # (B, 1, D): g_u for the last emitted label
    predictor_state: list[list[torch.Tensor]]
    frames_seen: int = 0
    extra: dict = field(default_factory=dict)


def greedy_init(model: ASRModel, batch_size: int,
                device: torch.device | str = "cpu") -> GreedyState:
    """The predictor primed with the blank (start-of-sequence) for ``batch_size`` utterances."""
    start = torch.full((batch_size, 1), model.blank, dtype=torch.long, device=device)
    ones = torch.ones(batch_size, dtype=torch.long, device=device)
    out, _, state = model.rnnt.predict(start, ones, None)
    return GreedyState([[] for _ in range(batch_size)], out, state)


def _select(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, *([1] * (new.dim() - 1))), new, old)


@torch.no_grad()
def greedy_search(model: ASRModel, encodings: torch.Tensor, lengths: torch.Tensor,
                  state: GreedyState, max_symbols: int = 5) -> GreedyState:
    """Continue greedy search over ``encodings (B, T, D)``; frames ``t >= lengths[b]`` of
    utterance ``b`` are skipped. Returns the updated ``state`` (modified in place)."""
    batch = encodings.shape[0]
    ones = torch.ones(batch, dtype=torch.long, device=encodings.device)
    for t in range(encodings.shape[1]):
        active = t < lengths
        if not bool(active.any()):
            break
        frame = encodings[:, t:t + 1]
        for _ in range(max_symbols):
            logits, _, _ = model.rnnt.join(frame, ones, state.predictor_out, ones)
            label = logits[:, 0, 0].argmax(-1)
            emit = active & (label != model.blank)
            if not bool(emit.any()):
                break
            out, _, new_state = model.rnnt.predict(label[:, None], ones, state.predictor_state)
            state.predictor_out = _select(emit, out, state.predictor_out)
            state.predictor_state = [
                [_select(emit, n, o) for n, o in zip(layer_new, layer_old, strict=True)]
                for layer_new, layer_old in zip(new_state, state.predictor_state, strict=True)]
            for b in torch.nonzero(emit).flatten().tolist():
                state.hyps[b].append(int(label[b]))
            active = emit  # a frame is read again only after a label
    state.frames_seen += encodings.shape[1]
    return state


@torch.no_grad()
def greedy_decode(model: ASRModel, batch: Batch, max_symbols: int = 5) -> list[list[int]]:
    """Greedy label sequences of a batch, encoding each utterance in one pass."""
    model.eval()
    batch = batch.to(model_device(model))
    x, lengths = model.encoder_input(batch.features, batch.lengths)
    encodings, enc_lengths = model.rnnt.transcribe(x, lengths)
    state = greedy_init(model, len(batch), x.device)
    return greedy_search(model, encodings, enc_lengths, state, max_symbols).hyps


def _segments(model: ASRModel, features: torch.Tensor, length: torch.Tensor):
    """Yield ``segment_length + right_context_length`` frames every ``segment_length``
    (a batch is padded to its longest utterance; shorter ones skip the extra frames)."""
    x, _ = model.encoder_input(features, length)
    seg, rc = model.config.segment_length, model.config.right_context_length
    for start in range(0, x.shape[1] - rc, seg):
        yield x[:, start:start + seg + rc]


@torch.no_grad()
def stream_greedy_decode(model: ASRModel, batch: Batch, max_symbols: int = 5) -> list[list[int]]:
    """Greedy decoding segment by segment, carrying the Emformer and search states."""
    model.eval()
    batch = batch.to(model_device(model))
    state = greedy_init(model, len(batch), batch.features.device)
    enc_state = None
    seg, rc = model.config.segment_length, model.config.right_context_length
    # frames of the whole-segment padded utterance, after time reduction
    valid = (batch.lengths + seg - 1) // seg * seg // model.config.time_reduction_stride
    per_segment = seg // model.config.time_reduction_stride
    for i, chunk in enumerate(_segments(model, batch.features, batch.lengths)):
        full = torch.full((len(batch),), seg + rc, dtype=torch.long, device=chunk.device)
        encodings, _, enc_state = model.rnnt.transcribe_streaming(chunk, full, enc_state)
        remaining = (valid - i * per_segment).clamp(0, per_segment)
        state = greedy_search(model, encodings, remaining, state, max_symbols)
    return state.hyps


def _beam_searcher(model: ASRModel):
    from torchaudio.models import RNNTBeamSearch

    return RNNTBeamSearch(model.rnnt, blank=model.blank)


@torch.no_grad()
def beam_decode(model: ASRModel, batch: Batch, beam_width: int = 4) -> list[list[int]]:
    """Best hypothesis of torchaudio's ``RNNTBeamSearch`` for each utterance (full mode)."""
    model.eval()
    batch = batch.to(model_device(model))
    searcher = _beam_searcher(model)
    out = []
    for b in range(len(batch)):
        x, lengths = model.encoder_input(batch.features[b:b + 1, :int(batch.lengths[b])],
                                         batch.lengths[b:b + 1])
        hypos = searcher(x, lengths, beam_width)
        out.append([int(k) for k in hypos[0][0][1:]])  # drop the leading blank (start token)
    return out


@torch.no_grad()
def stream_beam_decode(model: ASRModel, batch: Batch, beam_width: int = 4) -> list[list[int]]:
    """``RNNTBeamSearch.infer`` segment by segment, carrying encoder state and hypotheses."""
    model.eval()
    batch = batch.to(model_device(model))
    searcher = _beam_searcher(model)
    seg, rc = model.config.segment_length, model.config.right_context_length
    out = []
    for b in range(len(batch)):
        state, hypos = None, None
        one = batch.features[b:b + 1, :int(batch.lengths[b])], batch.lengths[b:b + 1]
        for chunk in _segments(model, *one):
            hypos, state = searcher.infer(chunk, torch.tensor([seg + rc], device=chunk.device),
                                          beam_width,
                                          state=state, hypothesis=hypos)
        out.append([int(k) for k in hypos[0][0][1:]])
    return out


DECODING_METHODS = ("greedy", "beam", "stream_greedy", "stream_beam")


def transcribe(model: ASRModel, dataset, tokenizer, *, method: str = "greedy",
               batch_size: int = 32, beam_width: int = 4) -> list[str]:
    """Transcripts of every utterance of ``dataset`` (in its order) with ``method`` in
    greedy, beam, stream_greedy, stream_beam. Utterances are batched by length."""
    decoders = {"greedy": lambda b: greedy_decode(model, b),
                "stream_greedy": lambda b: stream_greedy_decode(model, b),
                "beam": lambda b: beam_decode(model, b, beam_width),
                "stream_beam": lambda b: stream_beam_decode(model, b, beam_width)}
    if method not in decoders:
        raise ValueError(f"unknown decoding method {method!r}; valid: {DECODING_METHODS}")
    lengths = dataset.lengths()
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    texts: list[str] = [""] * len(lengths)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        for i, hyp in zip(chunk, decoders[method](dataset.batch(chunk)), strict=True):
            texts[i] = tokenizer.decode(hyp)
    return texts


@torch.no_grad()
def real_time_factor(model: ASRModel, batches, *, hop_s: float = 0.01,
                     method: str = "stream_greedy") -> dict[str, float]:
    """Decoding compute time over audio duration, one utterance at a time (batch of 1),
    as an on-device streaming recogniser runs. ``< 1`` is faster than real time."""
    decoders = {"stream_greedy": stream_greedy_decode, "greedy": greedy_decode}
    if method not in decoders:
        raise ValueError(f"unknown method {method!r}; valid: {sorted(decoders)}")
    compute, audio = 0.0, 0.0
    for batch in batches:
        for b in range(len(batch)):
            single = Batch(batch.features[b:b + 1, :int(batch.lengths[b])],
                           batch.lengths[b:b + 1], batch.targets[b:b + 1],
                           batch.target_lengths[b:b + 1])
            t0 = time.perf_counter()
            decoders[method](model, single)
            compute += time.perf_counter() - t0
            audio += float(batch.lengths[b]) * hop_s
    return {"rtf": compute / audio, "compute_s": compute, "audio_s": audio,
            "threads": torch.get_num_threads()}
