"""Utterance sets: features + label sequences, batched by index (``IndexBatches`` friendly).

``UtteranceSet`` holds log-mel features in memory (the embedded digit corpus);
``lib.asr.librispeech.LibriSpeechSet`` reads audio from disk on demand. Both expose
``len``, ``texts``, ``batch(indices) -> Batch`` and ``batches(batch_size)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from .features import log_mel
from .model import Batch, collate


class UtteranceSet(torch.utils.data.Dataset):
    """In-memory utterances: unnormalised log-mel ``(T, 80)`` and transcripts."""

    def __init__(self, features: Sequence[torch.Tensor], texts: Sequence[str], tokenizer,
                 speakers: Sequence[str] | None = None):
        if len(features) != len(texts):
            raise ValueError(f"{len(features)} feature sequences but {len(texts)} transcripts")
        self.features = list(features)
        self.texts = list(texts)
        self.targets = [tokenizer.encode(t) for t in self.texts]
        self.speakers = list(speakers) if speakers is not None else None

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, list[int]]:
        return self.features[i], self.targets[i]

    def batch(self, indices: Sequence[int] | torch.Tensor) -> Batch:
        idx = [int(i) for i in indices]
        return collate([self.features[i] for i in idx], [self.targets[i] for i in idx])

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Batches in order (for evaluation)."""
        for start in range(0, len(self), batch_size):
            yield self.batch(range(start, min(start + batch_size, len(self))))

    def subset(self, indices: Sequence[int]) -> UtteranceSet:
        """A view of some utterances (features are shared, not copied)."""
        out = UtteranceSet.__new__(UtteranceSet)
        idx = [int(i) for i in indices]
        out.features = [self.features[i] for i in idx]
        out.texts = [self.texts[i] for i in idx]
        out.targets = [self.targets[i] for i in idx]
        out.speakers = None if self.speakers is None else [self.speakers[i] for i in idx]
        return out

    def lengths(self) -> list[int]:
        """Frames per utterance (for length bucketing)."""
        return [int(f.shape[0]) for f in self.features]


def corpus_sets(corpus: dict[str, Any], tokenizer) -> dict[str, UtteranceSet]:
    """Feature sets of every split of a ``lib.asr.corpus`` corpus."""
    rate = corpus["sample_rate"]
    out = {}
    for split, data in corpus.items():
        if not isinstance(data, dict):
            continue
        feats = [log_mel(a, rate) for a in data["audio"]]
        out[split] = UtteranceSet(feats, data["text"], tokenizer, data.get("speaker"))
    return out


class BucketBatches:
    """Mini-batches of utterances of similar length; ``indices(step)`` depends only on
    ``(seed, step)``, as ``lib.core.IndexBatches`` (so training resumes exactly).

    Each epoch sorts the utterances by ``length * (1 + u)``, ``u ~ U(-jitter, jitter)``
    drawn from ``(seed, epoch)``, cuts the order into batches of ``batch_size`` and shuffles
    the batches: little padding, and batch compositions still change from epoch to epoch.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int,
                 jitter: float = 0.15):
        from lib.core import derive_seed, make_generator

        n = len(lengths)
        if n < 1 or batch_size < 1 or batch_size > n:
            raise ValueError(f"need 1 <= batch_size <= n, got batch_size={batch_size}, n={n}")
        self._derive, self._gen = derive_seed, make_generator
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.float64)
        self.batch_size, self.seed, self.jitter = batch_size, seed, jitter
        self.per_epoch = n // batch_size
        self._epoch, self._batches = -1, None

    def _epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        if epoch != self._epoch:
            g = self._gen(self._derive(self.seed, "buckets", epoch))
            noise = (torch.rand(len(self.lengths), generator=g, dtype=torch.float64) * 2 - 1)
            order = torch.argsort(self.lengths * (1 + self.jitter * noise), stable=True)
            chunks = [order[i * self.batch_size:(i + 1) * self.batch_size]
                      for i in range(self.per_epoch)]
            perm = torch.randperm(self.per_epoch, generator=g)
            self._epoch, self._batches = epoch, [chunks[int(p)] for p in perm]
        return self._batches

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(int(step), self.per_epoch)
        return self._epoch_batches(epoch)[i]


class _StepsDataset(torch.utils.data.Dataset):
    """Item ``i`` is the batch of step ``start + i`` (for DataLoader prefetching)."""

    def __init__(self, loader: StepBatchLoader, start: int):
        self.loader, self.start = loader, start

    def __len__(self) -> int:
        return self.loader.steps - self.start

    def __getitem__(self, i: int) -> Batch:
        return self.loader.dataset.batch(self.loader.indices(self.start + i))


class StepBatchLoader:
    """``get(step)``: the ``Batch`` of a training step, this rank's shard of the sampler's
    indices; with ``num_workers`` DataLoader workers read and featurise the next batches
    ahead, in step order (a resumed run restarts the workers at its first step). ``steps``
    is capped by the dry-run step limit (``lib.core.limit_steps``), as the training loop
    is, and no more workers start than there are batches left to read."""

    def __init__(self, dataset, sampler, steps: int, *, rank: int = 0, world: int = 1,
                 num_workers: int = 0):
        from lib.core.limits import limit_steps

        self.dataset, self.sampler, self.steps = dataset, sampler, limit_steps(steps)
        self.rank, self.world, self.num_workers = rank, world, num_workers
        self._iterator, self._next = None, None

    def indices(self, step: int) -> torch.Tensor:
        idx = self.sampler.indices(step)
        if self.world > 1:
            from lib.core.distributed import shard

            idx = shard(idx, self.rank, self.world)
        return idx

    def get(self, step: int) -> Batch:
        if self.num_workers == 0:
            return self.dataset.batch(self.indices(step))
        if self._iterator is None or step != self._next:
            ahead = _StepsDataset(self, step)
            loader = torch.utils.data.DataLoader(
                ahead, batch_size=None, shuffle=False,
                num_workers=max(1, min(self.num_workers, len(ahead))))
            self._iterator, self._next = iter(loader), step
        self._next += 1
        return next(self._iterator)
