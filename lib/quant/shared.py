r"""Trained weight sharing (Deep Compression's "trained quantization", Han et al. 2016).

Each layer's nonzeros are clustered once by k-means into ``2^b`` nonzero centres (the zero
kept exact, so a pruned weight stays pruned); thereafter the *centres* are trained: the
gradient of centre ``c_k`` is the sum of the gradients of the weights assigned to it,

.. math::  \frac{\partial L}{\partial c_k} = \sum_{i:\, a_i = k} \frac{\partial L}{\partial w_i},

and every weight is rewritten as its centre, so a layer never holds more than ``2^b``
nonzero values. Written by hand: torch has no shared-codebook fine-tuning.
"""

from __future__ import annotations

from typing import Any

import torch

from .kmeans import kmeans_quantize


class SharedWeights:
    """Codebooks and fixed assignments of ``weights`` (in place), trainable by ``step``.

    ``codebooks[j]`` holds layer ``j``'s centres (sorted, 0 included and held at 0);
    ``assign[j]`` the index of each weight's centre. Checkpointable (``state_dict``)."""

    def __init__(self, weights: list[torch.Tensor], bits: list[int], max_bins: int = 512):
        self.weights = weights
        self.codebooks: list[torch.Tensor] = []
        self.assign: list[torch.Tensor] = []
        self.zero: list[int] = []  # the index of each codebook's 0 (held there)
        with torch.no_grad():
            for w, b in zip(weights, bits, strict=True):
                q = kmeans_quantize(w, int(b), max_bins=max_bins)  # 2^b centres + the 0
                codebook = torch.unique(torch.cat([q.codebook.to(w.dtype),
                                                   w.new_zeros(1)]))  # sorted
                self.codebooks.append(codebook)
                self.assign.append(torch.searchsorted(codebook, q.weight.contiguous()))
                self.zero.append(int(torch.searchsorted(codebook, codebook.new_zeros(1))))
                w.copy_(codebook[self.assign[-1]])

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """One SGD step on the centres from the weights' ``.grad`` (summed per centre), the
        zero centre held at 0; then the weights are rewritten as their centres."""
        for j, (w, cb, a) in enumerate(zip(self.weights, self.codebooks, self.assign,
                                           strict=True)):
            if w.grad is not None:
                grad = torch.zeros_like(cb).scatter_add_(0, a.flatten(),
                                                         w.grad.flatten().to(cb.dtype))
                grad[self.zero[j]] = 0.0
                cb.sub_(lr * grad)
            w.copy_(cb[a])

    def state_dict(self) -> dict[str, Any]:
        return {"codebooks": self.codebooks, "assign": self.assign}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for mine, saved in zip(self.codebooks, state["codebooks"], strict=True):
            mine.copy_(saved)
        for mine, saved in zip(self.assign, state["assign"], strict=True):
            mine.copy_(saved)
