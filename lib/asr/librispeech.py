"""LibriSpeech (Panayotov et al., 2015) read from its real on-disk layout with soundfile.

Layout after extracting the openslr archives under ``root``::

    root/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    root/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

where each ``.trans.txt`` line is ``<speaker>-<chapter>-<utt> TRANSCRIPT IN CAPITALS``.
Audio is read with ``soundfile`` (``torchaudio.load`` needs torchcodec and FFmpeg since 2.9).
A missing split raises ``FileNotFoundError`` naming ``data_scripts/librispeech.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .features import log_mel
from .model import Batch, collate

SPLITS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other",
          "test-clean", "test-other")
TRAIN_960H = ("train-clean-100", "train-clean-360", "train-other-500")
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Utterance:
    """One LibriSpeech utterance: where its audio is, what is said, who says it."""

    utterance_id: str
    path: Path
    transcript: str
    speaker: str
    chapter: str


def fetch_command(root: str | Path, splits: Sequence[str]) -> str:
    return f"python data_scripts/librispeech.py --root {root} --splits {' '.join(splits)}"


def split_dir(root: str | Path, split: str) -> Path:
    """``root/LibriSpeech/<split>``, checked; a missing split names the fetch command."""
    if split not in SPLITS:
        raise ValueError(f"unknown LibriSpeech split {split!r}; valid splits are {SPLITS}")
    path = Path(root).expanduser() / "LibriSpeech" / split
    if not path.is_dir():
        raise FileNotFoundError(
            f"LibriSpeech split {split!r} not found at {path}. Fetch and verify it with:\n"
            f"    {fetch_command(root, [split])}")
    return path


def read_manifest(root: str | Path, split: str) -> list[Utterance]:
    """Every utterance of ``split``, sorted by id, from the ``*.trans.txt`` files."""
    base = split_dir(root, split)
    utterances = []
    for trans in sorted(base.glob("*/*/*.trans.txt")):
        speaker, chapter = trans.parent.parent.name, trans.parent.name
        if trans.name != f"{speaker}-{chapter}.trans.txt":
            raise ValueError(f"{trans}: expected the name {speaker}-{chapter}.trans.txt")
        for line_no, line in enumerate(trans.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            if not utt_id.startswith(f"{speaker}-{chapter}-") or not text:
                raise ValueError(f"{trans}:{line_no}: malformed line {line!r}")
            audio = trans.parent / f"{utt_id}.flac"
            if not audio.exists():
                raise FileNotFoundError(f"{trans}:{line_no}: audio {audio.name} is missing; "
                                        f"re-extract with {fetch_command(root, [split])}")
            utterances.append(Utterance(utt_id, audio, text, speaker, chapter))
    if not utterances:
        raise FileNotFoundError(f"no transcripts under {base}; fetch with "
                                f"{fetch_command(root, [split])}")
    return sorted(utterances, key=lambda u: u.utterance_id)


def read_audio(path: str | Path) -> torch.Tensor:
    """Float waveform in [-1, 1] at 16 kHz (mono)."""
    import soundfile as sf

    samples, rate = sf.read(str(path), dtype="float32", always_2d=False)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: sample rate {rate} Hz, LibriSpeech is {SAMPLE_RATE} Hz")
    if samples.ndim != 1:
        raise ValueError(f"{path}: expected mono audio, got shape {samples.shape}")
    return torch.from_numpy(samples)


class LibriSpeechSet(torch.utils.data.Dataset):
    """Utterances of one or more splits; features computed when an item is read."""

    def __init__(self, root: str | Path, splits: Sequence[str], tokenizer):
        if isinstance(splits, str):
            splits = (splits,)
        self.utterances = [u for s in splits for u in read_manifest(root, s)]
        self.tokenizer = tokenizer
        self.texts = [u.transcript.lower() for u in self.utterances]
        self.speakers = [u.speaker for u in self.utterances]

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, list[int]]:
        u = self.utterances[i]
        return log_mel(read_audio(u.path), SAMPLE_RATE), self.tokenizer.encode(self.texts[i])

    def batch(self, indices) -> Batch:
        items = [self[int(i)] for i in indices]
        return collate([f for f, _ in items], [t for _, t in items])

    def batches(self, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(self), batch_size):
            yield self.batch(range(start, min(start + batch_size, len(self))))

    def subset(self, indices) -> LibriSpeechSet:
        """The utterances ``indices``, in that order (as ``UtteranceSet.subset``)."""
        out = LibriSpeechSet.__new__(LibriSpeechSet)
        idx = [int(i) for i in indices]
        out.utterances = [self.utterances[i] for i in idx]
        out.tokenizer = self.tokenizer
        out.texts = [self.texts[i] for i in idx]
        out.speakers = [self.speakers[i] for i in idx]
        return out

    def lengths(self) -> list[int]:
        """Frames per utterance from the FLAC headers (no decoding)."""
        import soundfile as sf

        return [1 + sf.info(str(u.path)).frames // 160 for u in self.utterances]

    @property
    def features(self):
        """Lazily computed features (for CMVN statistics over a subset)."""
        return _LazyFeatures(self)


class _LazyFeatures:
    def __init__(self, dataset: LibriSpeechSet):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.dataset[i][0]
