"""Generic positive-unlabeled (PU) baselines, each a scikit-learn style estimator.

Every estimator is fitted on ``(X, s)`` with ``s = 1`` for a labeled positive and ``s = 0``
for an unlabeled row, and ranks rows with ``decision_function`` (higher = more likely
positive); AUC against true labels only needs that ranking.

* :func:`l1_logistic`: the "non-traditional" classifier of PU learning, an l1-penalized
  logistic regression of ``s`` on ``x`` (unlabeled treated as negative).
* :class:`ElkanNotoClassifier`: Elkan & Noto (2008). A probabilistic classifier
  ``g(x) ~ P(s=1 | x)`` and the label frequency ``c = P(s=1 | y=1)``, estimated as the mean
  of ``g`` over held-out labeled positives (their estimator e1). Dividing by ``c`` does not
  change a ranking, so the default is their *weighting* method: each unlabeled row enters
  the final classifier twice, as a positive with weight
  ``w(x) = (1-c)/c * g(x)/(1-g(x))`` and as a negative with weight ``1 - w(x)``.
* :class:`NNPUClassifier`: non-negative PU risk (Kiryo et al., 2017) with the sigmoid loss,
  a small torch model, and the class prior ``pi`` of the unlabeled rows given:

  ``R(g) = pi * E_P[l(g, +1)] + max(0, E_U[l(g, -1)] - pi * E_P[l(g, -1)])``;

  when the bracket falls below ``-beta`` the step is gradient *ascent* on it, scaled by
  ``gamma`` (their Algorithm 1).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from lib.core.limits import limit_steps


class _PUTags:
    """Binary only: the two classes are "labeled positive" and "unlabeled"."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


def pu_labels(estimator: BaseEstimator, y) -> np.ndarray:
    """``s`` in {0, 1} from binary labels (the larger label = labeled positive); sets
    ``estimator.classes_``. Multiclass or one-class targets are a ``ValueError``."""
    check_classification_targets(y)
    y_type = type_of_target(y, input_name="y", raise_unknown=True)
    if y_type != "binary":
        raise ValueError("Only binary classification is supported (labeled positive vs "
                         f"unlabeled). The type of the target is {y_type}.")
    classes, s = np.unique(y, return_inverse=True)
    if len(classes) != 2:
        raise ValueError(f"{type(estimator).__name__} needs exactly two classes (labeled "
                         f"positive and unlabeled), got {len(classes)} class(es): {classes[:5]}")
    estimator.classes_ = classes
    return s.astype(np.int64)


def l1_logistic(C: float = 0.1, *, class_weight: str | None = "balanced",
                random_state: int | None = 0) -> Pipeline:
    """Standardize, then l1-penalized logistic regression of ``s`` on ``x`` (liblinear)."""
    if not C > 0:
        raise ValueError(f"C must be > 0, got {C!r}")
    return make_pipeline(StandardScaler(), LogisticRegression(
        C=C, l1_ratio=1.0, solver="liblinear", class_weight=class_weight,
        random_state=random_state, max_iter=1000))


class ElkanNotoClassifier(_PUTags, ClassifierMixin, BaseEstimator):
    """Elkan & Noto (2008): estimate ``c = P(s=1|y=1)`` on held-out positives, then reweight.

    ``method="weighting"`` trains the final logistic regression on weighted copies of the
    unlabeled rows (their section 4); ``method="scaling"`` returns ``g(x) / c`` (their
    section 2), whose ranking equals that of ``g``.
    """

    def __init__(self, C: float = 1.0, hold_out: float = 0.2, method: str = "weighting",
                 random_state: int | None = 0):
        self.C = C
        self.hold_out = hold_out
        self.method = method
        self.random_state = random_state

    def _logreg(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, l1_ratio=0.0, max_iter=2000)

    def fit(self, X, y):
        from sklearn.model_selection import train_test_split

        if self.method not in ("weighting", "scaling"):
            raise ValueError(f"method must be 'weighting' or 'scaling', got {self.method!r}")
        if not 0 < self.hold_out < 1:
            raise ValueError(f"hold_out must lie in (0, 1), got {self.hold_out!r}")
        X, y = validate_data(self, X, y)
        s = pu_labels(self, y)
        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        stratify = s if min(np.bincount(s)) >= 2 else None
        Ztr, Zho, str_, sho = train_test_split(Z, s, test_size=self.hold_out, stratify=stratify,
                                               random_state=self.random_state)
        if len(np.unique(str_)) < 2 or not sho.any():
            Ztr, str_, Zho, sho = Z, s, Z, s  # too few rows to hold any out
        self.g_ = self._logreg().fit(Ztr, str_)
        # e1: c = mean of g over held-out labeled positives
        self.c_ = float(self.g_.predict_proba(Zho[sho == 1])[:, 1].mean())
        if self.method == "weighting":
            g_u = np.clip(self.g_.predict_proba(Z[s == 0])[:, 1], 1e-12, 1 - 1e-12)
            w = np.clip((1 - self.c_) / self.c_ * g_u / (1 - g_u), 0.0, 1.0)
            Zu = Z[s == 0]
            Zall = np.vstack([Z[s == 1], Zu, Zu])
            yall = np.r_[np.ones((s == 1).sum()), np.ones(len(Zu)), np.zeros(len(Zu))]
            wall = np.r_[np.ones((s == 1).sum()), w, 1 - w]
            if len(np.unique(yall[wall > 0])) < 2:  # every unlabeled row weighted positive
                wall = np.maximum(wall, 1e-6)
            self.final_ = self._logreg().fit(Zall, yall, sample_weight=wall)
        return self

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self)
        Z = self.scaler_.transform(validate_data(self, X, reset=False))
        if self.method == "scaling":
            return self.g_.predict_proba(Z)[:, 1] / self.c_ - 0.5
        return self.final_.decision_function(Z)

    def predict(self, X) -> np.ndarray:
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]


def sigmoid_loss(z: torch.Tensor, label: int) -> torch.Tensor:
    """``l(z, y) = sigmoid(-y z)``, the bounded loss nnPU uses."""
    return torch.sigmoid(-label * z)


def nnpu_risk(scores_p: torch.Tensor, scores_u: torch.Tensor, prior: float, *,
              nonnegative: bool = True) -> dict[str, torch.Tensor]:
    """The PU risk of scores on labeled positives ``scores_p`` and unlabeled ``scores_u``.

    ``positive = pi * mean_P l(g, +1)``, ``negative = mean_U l(g, -1) - pi * mean_P l(g, -1)``
    and ``risk = positive + max(0, negative)`` (nnPU; ``nonnegative=False`` gives uPU,
    ``positive + negative``).
    """
    if not 0 < prior < 1:
        raise ValueError(f"prior must lie in (0, 1), got {prior!r}")
    positive = prior * sigmoid_loss(scores_p, +1).mean()
    negative = sigmoid_loss(scores_u, -1).mean() - prior * sigmoid_loss(scores_p, -1).mean()
    risk = positive + (torch.clamp(negative, min=0.0) if nonnegative else negative)
    return {"risk": risk, "positive": positive, "negative": negative}


def nnpu_objective(scores_p: torch.Tensor, scores_u: torch.Tensor, prior: float, *,
                   beta: float = 0.0, gamma: float = 1.0,
                   nonnegative: bool = True) -> torch.Tensor:
    """What Algorithm 1 of Kiryo et al. differentiates: the risk, or ``-gamma * negative``."""
    parts = nnpu_risk(scores_p, scores_u, prior, nonnegative=False)
    if nonnegative and parts["negative"] < -beta:
        return -gamma * parts["negative"]
    return parts["positive"] + parts["negative"]


class NNPUClassifier(_PUTags, ClassifierMixin, BaseEstimator):
    """nnPU with a small MLP (``hidden=0``: linear) trained by Adam on standardized inputs.

    ``num_threads`` caps torch's CPU threads during ``fit`` (restored afterwards): on a
    model this small, thread start-up dominates and several threads are ~10x slower on a
    shared 2-core machine. ``device`` is where the model trains (``"cuda"`` at full scale).

    ``dtype`` is the training precision: float64 on CPU by default. In float32 the result
    depends on which SIMD kernels torch dispatches to (``ATEN_CPU_CAPABILITY`` default /
    avx2 / avx512 gave test AUCs 0.914496 vs 0.914550 on the same digits split, same
    seed), so a rerun on a host with another CPU gave other numbers; the thread count
    does not matter (bitwise equal at 1 and 2 threads). float64 keeps those last-bit
    differences far below anything reported. On CUDA the default is float32.
    """

    def __init__(self, prior: float = 0.5, hidden: int = 32, epochs: int = 100,
                 batch_size: int = 4096, lr: float = 1e-2, weight_decay: float = 1e-4,
                 beta: float = 0.0, gamma: float = 1.0, nonnegative: bool = True,
                 random_state: int = 0, num_threads: int | None = 1, device: str = "cpu",
                 dtype: str | None = None):
        self.prior = prior
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.beta = beta
        self.gamma = gamma
        self.nonnegative = nonnegative
        self.random_state = random_state
        self.num_threads = num_threads
        self.device = device
        self.dtype = dtype

    def _torch_dtype(self) -> torch.dtype:
        name = self.dtype or ("float64" if str(self.device).startswith("cpu") else "float32")
        if name not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return getattr(torch, name)

    def _model(self, d: int) -> nn.Module:
        if self.hidden == 0:
            return nn.Linear(d, 1)
        return nn.Sequential(nn.Linear(d, self.hidden), nn.ReLU(), nn.Linear(self.hidden, 1))

    def fit(self, X, y):
        if not 0 < self.prior < 1:
            raise ValueError(f"prior must lie in (0, 1), got {self.prior!r}")
        if self.hidden < 0 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("hidden must be >= 0, epochs and batch_size >= 1; got "
                             f"{self.hidden}, {self.epochs}, {self.batch_size}")
        X, y = validate_data(self, X, y)
        s_np = pu_labels(self, y)
        self.scaler_ = StandardScaler().fit(X)
        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            self._train(torch.as_tensor(self.scaler_.transform(X), dtype=self._torch_dtype(),
                                        device=self.device),
                        torch.as_tensor(s_np, device=self.device))
        finally:
            torch.set_num_threads(threads)
        return self

    def _train(self, Z: torch.Tensor, s: torch.Tensor) -> None:
        gen = torch.Generator().manual_seed(int(self.random_state))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state))
            self.model_ = self._model(Z.shape[1]).to(self.device, Z.dtype)
        opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        full_batch = self.batch_size >= len(s)
        self.history_ = []  # mean minibatch nnPU risk per epoch (before each step)
        for _ in range(limit_steps(self.epochs)):   # a dry run's step limit caps epochs
            order = (torch.arange(len(s)) if full_batch
                     else torch.randperm(len(s), generator=gen)).to(self.device)
            risks = []
            for start in range(0, len(s), self.batch_size):
                idx = order[start:start + self.batch_size]
                out, sb = self.model_(Z[idx]).squeeze(1), s[idx]
                if not (sb == 1).any() or not (sb == 0).any():
                    continue  # a risk needs both parts
                parts = nnpu_risk(out[sb == 1], out[sb == 0], self.prior, nonnegative=False)
                if self.nonnegative and parts["negative"] < -self.beta:
                    loss = -self.gamma * parts["negative"]  # Algorithm 1: step back up
                else:
                    loss = parts["positive"] + parts["negative"]
                neg = parts["negative"].detach()
                risks.append(float(parts["positive"].detach()
                                   + (neg.clamp(min=0.0) if self.nonnegative else neg)))
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.history_.append(float(np.mean(risks)) if risks else float("nan"))

    @torch.no_grad()
    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self)
        Z = torch.as_tensor(self.scaler_.transform(validate_data(self, X, reset=False)),
                            dtype=self._torch_dtype(), device=self.device)
        return self.model_(Z).squeeze(1).double().cpu().numpy()

    def predict(self, X) -> np.ndarray:
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]
