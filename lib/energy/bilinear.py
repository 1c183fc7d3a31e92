r"""Cost models of a network as a function of its layer widths, fitted on measurements.

ECC (Yang et al., CVPR 2019, Sec. 3) models the energy (or latency) of a feed-forward
network whose layer ``j`` maps ``s_{j-1}`` input channels to ``s_j`` outputs as

.. math::

    E(s) = a_0 + \sum_{j=1}^{L} a_j \frac{s_{j-1}}{u_{j-1}} \frac{s_j}{u_j},

``u_j`` the dense widths: each layer's work is proportional to the product of its input
and output widths, with a coefficient per layer that absorbs what the platform makes of it
(kernel size, feature-map size, memory traffic, the library's kernels). The coefficients are
fitted by least squares on many random-width variants measured on the device: no hardware
knowledge. Two simpler models are fitted on the same data for comparison:

* ``linear``: ``b_0 + sum_j b_j s_j / u_j`` over the free widths (linear in each width);
* ``macs``: ``b_0 + b_1 MACs(s)``: the multiply-accumulate count, one coefficient for all
  layers (``MACs(s) = sum_j M_j (s_{j-1}/u_{j-1})(s_j/u_j) + sum_j D_j s_j / u_j``, ``M_j``
  the dense layer's MACs, ``D_j`` those of layers whose work follows one width alone, such
  as MobileNet's depthwise convolutions).

A width vector holds all ``L + 1`` widths, the network's input channels and outputs
included (those are fixed; only the hidden ones are compressed). Fits use
``numpy.linalg.lstsq`` (ridge-regularised normal equations when ``ridge > 0``, as the
official code's ``--pinv`` path); the held-out error is the mean relative error
``|E_pred - E| / E`` of the official code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

KINDS = ("bilinear", "linear", "macs")


def _widths(widths, upper: Sequence[int]) -> np.ndarray:
    w = np.asarray(widths, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != len(upper):
        raise ValueError(f"widths must have shape (n, {len(upper)}) (all L + 1 widths, input "
                         f"and output included), got {w.shape}")
    if np.any(w < 0):
        raise ValueError("widths must be >= 0")
    return w


def _upper(upper: Sequence[int]) -> np.ndarray:
    u = np.asarray(upper, dtype=np.float64)
    if u.ndim != 1 or len(u) < 2 or np.any(u <= 0):
        raise ValueError(f"upper must hold >= 2 positive dense widths, got {upper!r}")
    return u


def bilinear_features(widths, upper: Sequence[int]) -> np.ndarray:
    """``(s_{j-1}/u_{j-1}) (s_j/u_j)`` for ``j = 1..L``: shape ``(n, L)``."""
    u = _upper(upper)
    x = _widths(widths, upper) / u
    return x[:, :-1] * x[:, 1:]


def free_widths(upper: Sequence[int]) -> tuple[int, ...]:
    """Indices of the compressible widths: all but the input (0) and the output (L)."""
    return tuple(range(1, len(upper) - 1))


def random_widths(upper: Sequence[int], n: int, rng: np.random.Generator,
                  low: Sequence[int] | int = 1) -> np.ndarray:
    """``n`` width vectors with each free width uniform in ``[low_j, u_j]`` (integers) and
    the input and output widths fixed at ``u_0`` and ``u_L`` (the official sampler)."""
    u = np.asarray(upper, dtype=np.int64)
    lo = np.broadcast_to(np.asarray(low, dtype=np.int64), u.shape)
    if np.any(lo < 1) or np.any(lo > u):
        raise ValueError(f"need 1 <= low <= upper, got low={low!r}, upper={upper!r}")
    out = np.tile(u, (n, 1))
    for j in free_widths(upper):
        out[:, j] = rng.integers(lo[j], u[j] + 1, size=n)
    return out


@dataclass(frozen=True)
class CostModel:
    """A fitted cost model (``kind`` in ``KINDS``): ``intercept + coef . features(s)``."""

    kind: str
    upper: tuple[int, ...]
    coef: tuple[float, ...]
    intercept: float
    layer_macs: tuple[float, ...] | None = None  # M_j, for kind "macs"
    width_macs: tuple[float, ...] | None = None  # D_j (one per width), for kind "macs"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown cost model {self.kind!r}; valid: {', '.join(KINDS)}")
        if self.kind == "macs" and (self.layer_macs is None
                                    or len(self.layer_macs) != len(self.upper) - 1):
            raise ValueError("a 'macs' model needs layer_macs: one MAC count per layer")

    def features(self, widths) -> np.ndarray:
        return cost_features(self.kind, widths, self.upper, self.layer_macs, self.width_macs)

    def predict(self, widths) -> np.ndarray:
        """Predicted cost of each width vector (shape ``(n,)``)."""
        return self.intercept + self.features(widths) @ np.asarray(self.coef)

    def predict_torch(self, s):
        """Differentiable prediction for a torch vector ``s`` of all ``L + 1`` widths (the
        s-step of ECC takes its gradient). ``linear`` is supported too."""
        import torch

        u = torch.as_tensor(self.upper, dtype=s.dtype, device=s.device)
        x = s / u
        coef = torch.as_tensor(self.coef, dtype=s.dtype, device=s.device)
        if self.kind == "linear":
            feats = x[list(free_widths(self.upper))]
        else:
            feats = x[:-1] * x[1:]
            if self.kind == "macs":
                feats = (feats * torch.as_tensor(self.layer_macs, dtype=s.dtype,
                                                 device=s.device)).sum()
                if self.width_macs is not None:
                    feats = feats + (x * torch.as_tensor(self.width_macs, dtype=s.dtype,
                                                         device=s.device)).sum()
                feats = feats.reshape(1)
        return self.intercept + (feats * coef).sum()

    def as_dict(self) -> dict:
        return asdict(self)


def cost_features(kind: str, widths, upper: Sequence[int],
                  layer_macs: Sequence[float] | None = None,
                  width_macs: Sequence[float] | None = None) -> np.ndarray:
    """The design matrix (no intercept column) of a cost model."""
    if kind == "bilinear":
        return bilinear_features(widths, upper)
    if kind == "linear":
        x = _widths(widths, upper) / _upper(upper)
        return x[:, list(free_widths(upper))]
    if kind == "macs":
        if layer_macs is None or len(layer_macs) != len(upper) - 1:
            raise ValueError("the 'macs' model needs layer_macs: one MAC count per layer")
        macs = bilinear_features(widths, upper) @ np.asarray(layer_macs, dtype=np.float64)
        if width_macs is not None:
            if len(width_macs) != len(upper):
                raise ValueError("width_macs needs one MAC count per width (L + 1)")
            macs = macs + (_widths(widths, upper) / _upper(upper)) @ np.asarray(
                width_macs, dtype=np.float64)
        return macs[:, None]
    raise ValueError(f"unknown cost model {kind!r}; valid: {', '.join(KINDS)}")


def fit_cost_model(kind: str, widths, costs, upper: Sequence[int], *,
                   layer_macs: Sequence[float] | None = None,
                   width_macs: Sequence[float] | None = None, ridge: float = 0.0) -> CostModel:
    """Least-squares fit of ``costs ~ intercept + coef . features(widths)``.

    ``ridge > 0`` solves ``(X^T X + ridge I) w = X^T y`` instead (intercept included, as the
    official code's regularised normal equations).
    """
    feats = cost_features(kind, widths, upper, layer_macs, width_macs)
    y = np.asarray(costs, dtype=np.float64).reshape(-1)
    if len(y) != len(feats):
        raise ValueError(f"{len(y)} costs for {len(feats)} width vectors")
    if not np.all(np.isfinite(y)):
        raise ValueError("costs hold NaN or inf")
    design = np.hstack([np.ones((len(y), 1)), feats])
    if len(y) < design.shape[1]:
        raise ValueError(f"{len(y)} measurements cannot fit {design.shape[1]} coefficients")
    if ridge > 0:
        w = np.linalg.solve(design.T @ design + ridge * np.eye(design.shape[1]), design.T @ y)
    elif ridge == 0:
        w = np.linalg.lstsq(design, y, rcond=None)[0]
    else:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    return CostModel(kind, tuple(int(v) for v in upper), tuple(float(v) for v in w[1:]),
                     float(w[0]),
                     None if layer_macs is None else tuple(float(m) for m in layer_macs),
                     None if width_macs is None else tuple(float(m) for m in width_macs))


def relative_errors(model: CostModel, widths, costs) -> np.ndarray:
    """``|E_pred - E| / E`` per measurement."""
    y = np.asarray(costs, dtype=np.float64).reshape(-1)
    return np.abs(model.predict(widths) - y) / np.abs(y)


def holdout_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices of a seeded random split."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    return perm[n_test:], perm[:n_test]


def compare_cost_models(widths, costs, upper: Sequence[int], *,
                        layer_macs: Sequence[float] | None = None,
                        width_macs: Sequence[float] | None = None, test_fraction: float = 0.2,
                        seed: int = 0, kinds: Sequence[str] = KINDS) -> dict:
    """Fit each model on a training split, score it on the held-out rest.

    Returns ``{"models": {kind: CostModel}, "errors": {kind: held-out relative errors},
    "train": indices, "test": indices}``.
    """
    w = np.asarray(widths)
    y = np.asarray(costs, dtype=np.float64)
    train, test = holdout_split(len(y), test_fraction, seed)
    models, errors = {}, {}
    for kind in kinds:
        if kind == "macs" and layer_macs is None:
            continue
        models[kind] = fit_cost_model(kind, w[train], y[train], upper, layer_macs=layer_macs,
                                      width_macs=width_macs)
        errors[kind] = relative_errors(models[kind], w[test], y[test])
    return {"models": models, "errors": errors, "train": train, "test": test}
