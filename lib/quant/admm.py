r"""ADMM pieces shared by the compression papers that split a constraint with a duplicate.

Both the sparsity-quantization joint learning (prune_quant) and adversarially trained
model compression (ATMC) solve ``min_W L(W)  s.t.  W in C`` (a budget on nonzeros, bits,
a codebook) by ADMM with a *projected duplicate* ``V`` and a scaled dual ``U``:

.. math::

    W &\leftarrow \arg\min_W L(W) + \tfrac{\rho}{2}\|W - V + U\|^2
        \quad\text{(a gradient step, then the proximal pull below)}\\
    V &\leftarrow \Pi_C(W + U)\\
    U &\leftarrow U + W - V

What differs between the papers is ``C`` and its projection ``Pi_C``; the pull and the
state (``V``, ``U``, the bits and nonzeros, a history) are the same and live here.
"""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def proximal_pull(weights: list[torch.Tensor], v: list[torch.Tensor], u: list[torch.Tensor],
                  lr: float, rho: float) -> None:
    """The W-step's proximal part, in place:
    ``W <- argmin_X |X - W|^2 / (2 lr) + rho/2 |X - V + U|^2 = (W + beta (V - U)) / (1 + beta)``
    with ``beta = lr rho``."""
    if lr < 0 or rho < 0:
        raise ValueError(f"lr and rho must be >= 0, got lr={lr}, rho={rho}")
    beta = lr * rho
    for w, vj, uj in zip(weights, v, u, strict=True):
        w.add_(beta * (vj - uj)).div_(1.0 + beta)


@torch.no_grad()
def dual_update(weights: list[torch.Tensor], v: list[torch.Tensor],
                u: list[torch.Tensor]) -> float:
    """``U <- U + W - V`` in place; returns the primal residual ``sum |W - V|^2``."""
    residual = 0.0
    for w, vj, uj in zip(weights, v, u, strict=True):
        diff = w.detach() - vj
        uj.add_(diff)
        residual += float((diff ** 2).sum())
    return residual


class ADMMState:
    """``V``, ``U``, the bits and nonzeros of an ADMM run, checkpointable
    (``state_dict``/``load_state_dict``, so ``train_loop`` saves and resumes it)."""

    def __init__(self, weights: list[torch.Tensor], bits: list[int]):
        self.v = [w.detach().clone() for w in weights]
        self.u = [torch.zeros_like(w) for w in weights]
        self.bits = list(bits)
        self.nnz = [int((w != 0).sum()) for w in weights]
        self.history: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"v": self.v, "u": self.u, "bits": self.bits, "nnz": self.nnz,
                "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for mine, saved in ((self.v, state["v"]), (self.u, state["u"])):
            for a, b in zip(mine, saved, strict=True):
                a.copy_(b)
        self.bits, self.nnz = list(state["bits"]), list(state["nnz"])
        self.history = list(state["history"])
