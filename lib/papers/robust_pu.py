r"""Robust AUC maximization for positive-unlabeled (PU) learning (Ren et al., TNNLS 2019).

**The problem (the paper's).** We observe ``n+`` rows labeled positive and ``n_u`` unlabeled
rows that mix positives and negatives, and want a scorer that ranks positives above
negatives. Three things go wrong on complex data: negatives dominate (so accuracy is a poor
target and AUC a robust one); some labeled "positives" are wrong (*outliers*); and some
features are redundant or corrupted. The paper unifies AUC maximization, outlier detection
and feature selection in one model, bounds its generalization error, and reads off the
bound that the unlabeled sample suffices once it is about as large as the positive sample.
Applications: surgical-site infection and EEG seizure detection (clinical data, not public).

**The objective (our reading: only the abstract and introduction were available).** A linear
score ``f(x) = w'x``; positives ``x_i`` (i <= n+), unlabeled ``u_j`` (j <= n_u) treated as
negatives for the AUC; a pairwise surrogate ``phi`` of the 0-1 ranking loss; an indicator
``p`` over the labeled positives that keeps ``n+ - K`` of them; a budget ``s`` on features:

.. math::

    \min_{w,\,p}\; F(w, p) = \frac{1}{(n_+ - K)\, n_u} \sum_{i=1}^{n_+} p_i
        \sum_{j=1}^{n_u} \phi\big(w^\top x_i - w^\top u_j\big) + \frac{\lambda}{2}\|w\|_2^2
    \quad\text{s.t.}\quad p \in \{0,1\}^{n_+},\; \textstyle\sum_i p_i = n_+ - K,\;
    \|w\|_0 \le s

(or ``+ alpha ||w||_1`` instead of the budget). Surrogates of the margin ``z = a_i - b_j``
(``a = Xp w``, ``b = Xu w``): square ``(1 - z)^2``, squared hinge ``max(0, 1 - z)^2``,
logistic ``log(1 + e^{-z})``.

**The algorithm (our reading).** Alternate exact minimization in ``p`` with projected
gradient steps in ``w``; neither half-step can raise ``F``:

1. warm start: ``w`` from a few gradient steps with every positive kept (``p = 1``);
2. *p-step*: ``l_i(w) = sum_j phi(a_i - b_j)``; keep the ``n+ - K`` positives of smallest
   ``l_i`` (``select_inliers``), the exact minimizer over ``p``;
3. *w-step*: ``w <- H_s(w - eta grad_w F)``, ``H_s`` keeping the ``s`` largest ``|w_k|``
   (iterative hard thresholding; ``soft_threshold`` for the l1 penalty), ``eta`` halved
   until the quadratic upper bound holds, which makes the step monotone;
4. repeat 2-3 until ``p`` stops changing and ``F`` moves by less than ``tol``.

**O(n) pair sums.** For the square loss ``sum_j (1 - a_i + b_j)^2 = n_u (1 - a_i)^2 +
2 (1 - a_i) sum_j b_j + sum_j b_j^2``: every per-positive loss, the objective and its
gradient come from two sums over the unlabeled rows (the trick behind one-pass AUC,
Gao et al. 2013). The squared hinge only sums over active pairs ``b_j > a_i - 1``: sorting
plus prefix sums gives ``O(n log n)``. The logistic loss has no such structure: ``O(n+ n_u)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from lib.core import ArtifactCache, ScaleConfigs, derive_seed
from lib.core.claims import Claim
from lib.core.progress import progress
from lib.tabular import pu_data
from lib.tabular.pu_baselines import ElkanNotoClassifier, NNPUClassifier, l1_logistic, pu_labels
from lib.tabular.pu_data import PUSplit, load_tabular, make_pu_split

LOSSES = ("square", "squared_hinge", "logistic")
FEATURE_SELECTION = ("l0", "l1", None)
METHODS = ("robust_auc", "plain_auc", "l1_logistic", "elkan_noto", "nnpu")
AXES = ("outlier_fraction", "noise_features", "unlabeled_ratio")


# --------------------------------------------------------------------------------------
# Pairwise AUC surrogates: per-positive loss sums and gradients w.r.t. the scores
# --------------------------------------------------------------------------------------

def _check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid losses are {', '.join(LOSSES)}")


def square_pair_terms(a: np.ndarray, b: np.ndarray,
                      p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Square loss ``(1 - a_i + b_j)^2`` over all pairs in O(n+ + n_u).

    Returns ``l`` with ``l_i = sum_j phi(a_i - b_j)``, and the gradients of
    ``S = sum_i p_i l_i`` w.r.t. the positive scores ``a`` and the unlabeled scores ``b``.
    """
    n_u, b1, b2 = len(b), b.sum(), (b * b).sum()
    r = 1.0 - a
    per_positive = n_u * r * r + 2.0 * r * b1 + b2        # sum_j (r_i + b_j)^2
    grad_a = -2.0 * p * (n_u * r + b1)                     # dS/da_i = -2 p_i sum_j (r_i + b_j)
    grad_b = 2.0 * ((p * r).sum() + p.sum() * b)           # dS/db_j = 2 sum_i p_i (r_i + b_j)
    return per_positive, grad_a, grad_b


def squared_hinge_pair_terms(a: np.ndarray, b: np.ndarray,
                             p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squared hinge ``max(0, 1 - a_i + b_j)^2`` in O(n log n): sort, then prefix sums.

    The pair (i, j) is active iff ``b_j > a_i - 1`` (equivalently ``a_i < b_j + 1``); on the
    active set the loss is the square loss, so the square-loss sums apply to suffixes.
    """
    n_u = len(b)
    b_sorted = np.sort(b)
    # suffix sums of b and b^2 over b_sorted[k:], with a trailing 0
    s1 = np.r_[np.cumsum(b_sorted[::-1])[::-1], 0.0]
    s2 = np.r_[np.cumsum((b_sorted * b_sorted)[::-1])[::-1], 0.0]
    k = np.searchsorted(b_sorted, a - 1.0, side="right")   # first active j for each i
    cnt, sb1, sb2 = n_u - k, s1[k], s2[k]
    r = 1.0 - a
    per_positive = cnt * r * r + 2.0 * r * sb1 + sb2
    grad_a = -2.0 * p * (cnt * r + sb1)
    # for each j: the positives with a_i < b_j + 1, as prefix sums over sorted a
    order = np.argsort(a, kind="stable")
    a_sorted = a[order]
    pp = np.r_[0.0, np.cumsum(p[order])]
    pr = np.r_[0.0, np.cumsum((p * r)[order])]
    m = np.searchsorted(a_sorted, b + 1.0, side="left")
    grad_b = 2.0 * (pr[m] + b * pp[m])
    return per_positive, grad_a, grad_b


def logistic_pair_terms(a: np.ndarray, b: np.ndarray, p: np.ndarray, *,
                        max_block: int = 1 << 22) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logistic ``log(1 + exp(-(a_i - b_j)))``: O(n+ n_u), in blocks of positives."""
    per_positive = np.empty_like(a)
    grad_a = np.empty_like(a)
    grad_b = np.zeros_like(b)
    rows = max(1, max_block // max(len(b), 1))
    for start in range(0, len(a), rows):
        sl = slice(start, start + rows)
        z = a[sl, None] - b[None, :]
        per_positive[sl] = np.logaddexp(0.0, -z).sum(1)
        dphi = -0.5 * (1.0 - np.tanh(0.5 * z))             # phi'(z) = -sigmoid(-z), stably
        grad_a[sl] = p[sl] * dphi.sum(1)
        grad_b -= p[sl] @ dphi
    return per_positive, grad_a, grad_b


def pair_terms(a: np.ndarray, b: np.ndarray, p: np.ndarray,
               loss: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-positive pair-loss sums and score gradients for ``loss`` (fast path)."""
    _check_loss(loss)
    fn = {"square": square_pair_terms, "squared_hinge": squared_hinge_pair_terms,
          "logistic": logistic_pair_terms}[loss]
    return fn(a, b, p)


def pair_terms_bruteforce(a: np.ndarray, b: np.ndarray, p: np.ndarray,
                          loss: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same quantities from the explicit ``n+ x n_u`` margin matrix (tests only)."""
    _check_loss(loss)
    z = a[:, None] - b[None, :]
    if loss == "square":
        phi, dphi = (1 - z) ** 2, -2 * (1 - z)
    elif loss == "squared_hinge":
        h = np.maximum(0.0, 1 - z)
        phi, dphi = h * h, -2 * h
    else:
        phi, dphi = np.log1p(np.exp(-z)), -1.0 / (1.0 + np.exp(z))
    weighted = p[:, None] * dphi
    return phi.sum(1), weighted.sum(1), -weighted.sum(0)


# --------------------------------------------------------------------------------------
# The objective and the two half-steps
# --------------------------------------------------------------------------------------

def hard_threshold(w: np.ndarray, budget: int) -> np.ndarray:
    """``H_s(w)``: keep the ``budget`` entries of largest ``|w_k|`` (ties: lower index)."""
    if budget >= len(w):
        return w.copy()
    keep = np.argsort(-np.abs(w), kind="stable")[:budget]
    out = np.zeros_like(w)
    out[keep] = w[keep]
    return out


def soft_threshold(w: np.ndarray, t: float) -> np.ndarray:
    """The proximal map of ``t ||w||_1``."""
    return np.sign(w) * np.maximum(np.abs(w) - t, 0.0)


def select_inliers(per_positive: np.ndarray, n_keep: int) -> np.ndarray:
    """The p-step: ``p_i = 1`` for the ``n_keep`` smallest losses (exact minimizer over p)."""
    p = np.zeros(len(per_positive))
    p[np.argsort(per_positive, kind="stable")[:n_keep]] = 1.0
    return p


def smooth_objective(w: np.ndarray, Xp: np.ndarray, Xu: np.ndarray, p: np.ndarray, loss: str,
                     l2: float) -> tuple[float, np.ndarray, np.ndarray]:
    """``f(w) = S(w, p) / (sum(p) n_u) + l2/2 ||w||^2``, its gradient, and the per-positive
    losses ``l_i / n_u`` (what the p-step ranks)."""
    a, b = Xp @ w, Xu @ w
    per_positive, grad_a, grad_b = pair_terms(a, b, p, loss)
    scale = 1.0 / (p.sum() * len(b))
    value = scale * float(p @ per_positive) + 0.5 * l2 * float(w @ w)
    grad = scale * (Xp.T @ grad_a + Xu.T @ grad_b) + l2 * w
    return value, grad, per_positive / len(b)


def penalty(w: np.ndarray, alpha: float) -> float:
    return alpha * float(np.abs(w).sum())


def w_step(w: np.ndarray, Xp: np.ndarray, Xu: np.ndarray, p: np.ndarray, *, loss: str,
           l2: float, selection: str | None, budget: int, alpha: float, eta: float,
           max_backtracks: int = 40) -> tuple[np.ndarray, float]:
    """One projected (proximal) gradient step ``w <- H_s(w - eta grad f)`` with backtracking.

    ``eta`` is halved until ``f(w') <= f(w) + g'(w'-w) + ||w'-w||^2 / (2 eta)``; ``w'``
    minimizes that bound over the feasible set, which holds ``w``, so ``F`` cannot rise.
    Returns the new ``w`` and the step size to try next (doubled after a success).
    """
    f0, g, _ = smooth_objective(w, Xp, Xu, p, loss, l2)
    for _ in range(max_backtracks):
        v = w - eta * g
        if selection == "l0":
            w_new = hard_threshold(v, budget)
        elif selection == "l1":
            w_new = soft_threshold(v, eta * alpha)
        else:
            w_new = v
        d = w_new - w
        f_new = smooth_objective(w_new, Xp, Xu, p, loss, l2)[0]
        if f_new <= f0 + float(g @ d) + float(d @ d) / (2 * eta) + 1e-12 * abs(f0):
            return w_new, 2.0 * eta
        eta *= 0.5
    return w, eta  # no acceptable step: stay (F unchanged)


@dataclass
class RobustPUFit:
    """What :func:`fit_robust_pu_auc` returns."""

    w: np.ndarray                 # weights (in the space of the given features)
    p: np.ndarray                 # 1 = kept positive, 0 = flagged outlier
    history: list[dict[str, Any]]  # objective after every half-step (monotone from step 1)
    n_iter: int


def fit_robust_pu_auc(Xp: np.ndarray, Xu: np.ndarray, *, loss: str = "square",
                      n_outliers: int = 0, selection: str | None = "l0", budget: int = 0,
                      alpha: float = 0.0, l2: float = 1e-3, max_iter: int = 30,
                      inner_steps: int = 10, warm_steps: int = 10, tol: float = 1e-7,
                      step_size: float = 1.0) -> RobustPUFit:
    """The alternating solver (steps 1-4 of the module docstring)."""
    n_pos, d = Xp.shape
    if not 0 <= n_outliers < n_pos:
        raise ValueError(f"n_outliers must lie in [0, {n_pos}) for {n_pos} positives, "
                         f"got {n_outliers}")
    if selection == "l0" and not 1 <= budget <= d:
        raise ValueError(f"budget must lie in [1, {d}] for l0 selection, got {budget}")
    budget = budget if selection == "l0" else d

    def full_objective(w: np.ndarray, p: np.ndarray) -> tuple[float, np.ndarray]:
        value, _, per_pos = smooth_objective(w, Xp, Xu, p, loss, l2)
        return value + (penalty(w, alpha) if selection == "l1" else 0.0), per_pos

    step_kw = dict(loss=loss, l2=l2, selection=selection, budget=budget, alpha=alpha)
    # 1. warm start with every labeled positive kept
    w, eta, p = np.zeros(d), step_size, np.ones(n_pos)
    for _ in range(warm_steps):
        w, eta = w_step(w, Xp, Xu, p, eta=eta, **step_kw)
    history: list[dict[str, Any]] = []
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        # 2. p-step: keep the n+ - K positives of smallest pair loss
        _, per_pos = full_objective(w, p)
        p_new = select_inliers(per_pos, n_pos - n_outliers)
        changed = n_iter == 1 or bool((p_new != p).any())
        p = p_new
        history.append({"iter": n_iter, "half": "p", "objective": full_objective(w, p)[0]})
        # 3. w-step: projected gradient steps with p fixed
        for _ in range(inner_steps):
            w, eta = w_step(w, Xp, Xu, p, eta=eta, **step_kw)
        value = full_objective(w, p)[0]
        history.append({"iter": n_iter, "half": "w", "objective": value})
        # 4. stop once p is stable and F has settled
        prev = history[-3]["objective"] if len(history) >= 3 else math.inf
        if not changed and abs(prev - value) <= tol * max(1.0, abs(value)):
            break
    return RobustPUFit(w=w, p=p, history=history, n_iter=n_iter)


# --------------------------------------------------------------------------------------
# The scikit-learn estimator
# --------------------------------------------------------------------------------------

class RobustPUAUC(ClassifierMixin, BaseEstimator):
    """Robust PU AUC maximization with outlier detection and feature selection.

    Fit on ``(X, y)`` with two classes: the larger label marks the labeled positives, the
    smaller the unlabeled rows (e.g. ``y = s`` in {0, 1}).

    Parameters
    ----------
    loss : {"square", "squared_hinge", "logistic"}
        Pairwise AUC surrogate.
    n_outliers : int or float
        ``K``, how many labeled positives to drop: a count, or a fraction in [0, 1) of
        the labeled positives (rounded down).
    feature_selection : {"l0", "l1", None}
        ``"l0"``: budget ``||w||_0 <= n_features_to_select`` (hard thresholding);
        ``"l1"``: penalty ``alpha ||w||_1``; ``None``: all features.
    n_features_to_select : int or float
        The budget ``s``: a count, or a fraction in (0, 1] of the features (rounded up).
    alpha, l2 : float
        l1 strength (``feature_selection="l1"``) and ridge strength.
    max_iter, inner_steps, warm_steps, tol, step_size :
        Alternations, gradient steps per w-step, warm-start steps, stopping tolerance,
        initial step size.
    standardize : bool
        Scale features to zero mean and unit variance first (coefficients are reported in
        the original units).

    Attributes
    ----------
    coef_ : (n_features,) weights in original units; ``intercept_`` the threshold shift.
    support_ : (n_features,) bool, the selected features; ``selected_features_`` their indices.
    outlier_mask_ : (n_samples,) bool, training rows labeled positive and flagged outliers;
        ``outlier_indices_`` their row indices.
    objective_history_ : objective after every half-step; ``n_iter_`` alternations run.
    threshold_ : ``predict`` says positive above the midpoint of the mean kept-positive and
        mean unlabeled scores (our reading: AUC itself needs no threshold).
    """

    def __init__(self, loss: str = "square", n_outliers: int | float = 0.1,
                 feature_selection: str | None = "l0", n_features_to_select: int | float = 0.5,
                 alpha: float = 0.01, l2: float = 1e-3, max_iter: int = 30,
                 inner_steps: int = 10, warm_steps: int = 10, tol: float = 1e-7,
                 step_size: float = 1.0, standardize: bool = True):
        self.loss = loss
        self.n_outliers = n_outliers
        self.feature_selection = feature_selection
        self.n_features_to_select = n_features_to_select
        self.alpha = alpha
        self.l2 = l2
        self.max_iter = max_iter
        self.inner_steps = inner_steps
        self.warm_steps = warm_steps
        self.tol = tol
        self.step_size = step_size
        self.standardize = standardize

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # PU: labeled positive vs unlabeled
        return tags

    def _resolve_k(self, n_pos: int) -> int:
        k = self.n_outliers
        if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)):
            raise ValueError(f"n_outliers must be an int count or a float fraction, got {k!r}")
        if isinstance(k, (float, np.floating)):
            if not 0.0 <= k < 1.0:
                raise ValueError(f"n_outliers as a fraction must lie in [0, 1), got {k}")
            return min(int(math.floor(k * n_pos)), n_pos - 1)
        if not 0 <= k < n_pos:
            raise ValueError(f"n_outliers={k} must lie in [0, {n_pos}) for {n_pos} labeled "
                             "positives")
        return int(k)

    def _resolve_budget(self, d: int) -> int:
        s = self.n_features_to_select
        if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)):
            raise ValueError(f"n_features_to_select must be an int or a float, got {s!r}")
        if isinstance(s, (float, np.floating)):
            if not 0.0 < s <= 1.0:
                raise ValueError(f"n_features_to_select as a fraction must lie in (0, 1], "
                                 f"got {s}")
            return max(1, math.ceil(s * d))
        if not 1 <= s <= d:
            raise ValueError(f"n_features_to_select={s} must lie in [1, {d}] for {d} features")
        return int(s)

    def fit(self, X, y):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid losses are {', '.join(LOSSES)}")
        if self.feature_selection not in FEATURE_SELECTION:
            raise ValueError(f"feature_selection must be one of {FEATURE_SELECTION}, "
                             f"got {self.feature_selection!r}")
        for name in ("alpha", "l2"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        X, y = validate_data(self, X, y, dtype=np.float64)
        s = pu_labels(self, y)
        d = X.shape[1]
        mean, scale = np.zeros(d), np.ones(d)
        if self.standardize:
            mean, std = X.mean(0), X.std(0)
            scale = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        Z = (X - mean) / scale
        pos, unl = np.flatnonzero(s == 1), np.flatnonzero(s == 0)
        k = self._resolve_k(len(pos))
        budget = self._resolve_budget(d) if self.feature_selection == "l0" else d
        fit = fit_robust_pu_auc(Z[pos], Z[unl], loss=self.loss, n_outliers=k,
                                selection=self.feature_selection, budget=budget,
                                alpha=self.alpha, l2=self.l2, max_iter=self.max_iter,
                                inner_steps=self.inner_steps, warm_steps=self.warm_steps,
                                tol=self.tol, step_size=self.step_size)
        scores = Z @ fit.w
        kept = pos[fit.p == 1]
        self.threshold_ = 0.5 * (scores[kept].mean() + scores[unl].mean())
        self.w_ = fit.w
        self.coef_ = fit.w / scale
        self.intercept_ = float(-(mean / scale) @ fit.w - self.threshold_)
        self.support_ = fit.w != 0
        self.selected_features_ = np.flatnonzero(self.support_)
        self.outlier_mask_ = np.zeros(len(y), dtype=bool)
        self.outlier_mask_[pos[fit.p == 0]] = True
        self.outlier_indices_ = np.flatnonzero(self.outlier_mask_)
        self.objective_history_ = fit.history
        self.n_iter_ = fit.n_iter
        return self

    def decision_function(self, X) -> np.ndarray:
        """The score ``w'x`` shifted so that 0 is the ``predict`` threshold."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_ + self.intercept_

    def predict(self, X) -> np.ndarray:
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]


# --------------------------------------------------------------------------------------
# Experiments: the chapter's sweeps
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RobustPUConfig:
    """Knobs of the chapter's experiments (every unknown choice of the paper is one)."""

    datasets: tuple[str, ...]          # tables from lib.tabular.pu_data.DATASETS
    feature_budgets: tuple[int, ...]   # s for each table (same order), not tuned
    n_seeds: int                       # repeated random splits per setting
    outlier_fractions: tuple[float, ...]
    noise_features: tuple[int, ...]
    unlabeled_ratios: tuple[float, ...]
    base_outlier_fraction: float = 0.2  # held fixed while another axis varies
    base_noise_features: int = 30
    labeled_fraction: float = 0.3      # labeled share of the training positives
    test_fraction: float = 0.25
    max_train: int | None = None       # cap on training rows (large tables)
    digits_positive_class: int = 3
    covtype_positive_class: int = 4
    data_home: str | None = None       # where fetch_covtype keeps its copy
    # the method (our reading of the paper's knobs)
    assumed_outlier_fraction: float | None = 0.2  # K / n+ given to the method; None = true K
    max_iter: int = 30
    inner_steps: int = 10
    # hyperparameters, chosen per table by PU validation AUC at the base setting
    tune_per_point: bool = True        # False: tune once per table at the base setting
    n_tune_seeds: int = 1              # tuning splits per point
    cv_folds: int = 3                  # PU validation AUC: mean over stratified folds
    loss_grid: tuple[str, ...] = ("square", "squared_hinge")
    l2_grid: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)
    # logistic regressions: per-row penalty alpha, i.e. C = 1 / (alpha * n_rows), so that a
    # value tuned on one training-set size means the same on another
    l1_alpha_grid: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)
    elkan_noto_alpha_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0)
    nnpu_weight_decay_grid: tuple[float, ...] = (1e-4, 1e-2, 1e-1)
    # nnPU's fixed knobs
    nnpu_hidden: int = 32
    nnpu_epochs: int = 60
    nnpu_lr: float = 1e-2
    nnpu_batch_size: int = 4096
    device: str = "cpu"                # nnPU's device ("cuda" at full scale)
    n_jobs: int = 1                    # processes for the sweep points (joblib)
    methods: tuple[str, ...] = METHODS

    def __post_init__(self):
        unknown = set(self.datasets) - set(pu_data.DATASETS)
        if unknown:
            raise ValueError(f"unknown table(s) {sorted(unknown)}; valid: {pu_data.DATASETS}")
        if len(self.feature_budgets) != len(self.datasets):
            raise ValueError("feature_budgets needs one budget per table in datasets")
        bad = set(self.methods) - set(METHODS)
        if bad:
            raise ValueError(f"unknown method(s) {sorted(bad)}; valid: {METHODS}")
        if set(self.loss_grid) - set(LOSSES) or not self.loss_grid:
            raise ValueError(f"loss_grid must hold some of {LOSSES}, got {self.loss_grid}")
        if self.n_seeds < 1 or self.n_tune_seeds < 1 or self.cv_folds < 2:
            raise ValueError(f"n_seeds and n_tune_seeds must be >= 1 and cv_folds >= 2, got "
                             f"{self.n_seeds}, {self.n_tune_seeds}, {self.cv_folds}")


CONFIGS = ScaleConfigs(
    smoke=RobustPUConfig(
        datasets=("breast_cancer",), feature_budgets=(10,), n_seeds=2,
        outlier_fractions=(0.0, 0.3), noise_features=(0, 100), unlabeled_ratios=(0.5, 2.0),
        max_iter=10, tune_per_point=False, cv_folds=2, loss_grid=("square",), l2_grid=(10.0,),
        l1_alpha_grid=(0.1,), elkan_noto_alpha_grid=(1.0,), nnpu_weight_decay_grid=(1e-2,),
        nnpu_epochs=20),
    tutorial=RobustPUConfig(
        datasets=("breast_cancer", "digits"), feature_budgets=(10, 20), n_seeds=5,
        outlier_fractions=(0.0, 0.1, 0.2, 0.3), noise_features=(0, 100, 300),
        unlabeled_ratios=(0.25, 0.5, 1.0, 2.0, 4.0), max_iter=20, tune_per_point=False,
        n_tune_seeds=2, n_jobs=2),
    full=RobustPUConfig(
        datasets=("breast_cancer", "digits", "covtype"), feature_budgets=(10, 20, 20),
        n_seeds=20, outlier_fractions=(0.0, 0.05, 0.1, 0.2, 0.3, 0.4),
        noise_features=(0, 30, 100, 300, 1000), unlabeled_ratios=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
        max_train=50_000, max_iter=50, n_tune_seeds=3, cv_folds=5, loss_grid=LOSSES, n_jobs=4,
        l2_grid=(1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0),
        l1_alpha_grid=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
        elkan_noto_alpha_grid=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
        nnpu_weight_decay_grid=(1e-5, 1e-4, 1e-3, 1e-2, 1e-1), nnpu_epochs=200, device="cuda"),
)


def axis_values(cfg: RobustPUConfig, axis: str) -> tuple:
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}; valid axes are {', '.join(AXES)}")
    return {"outlier_fraction": cfg.outlier_fractions, "noise_features": cfg.noise_features,
            "unlabeled_ratio": cfg.unlabeled_ratios}[axis]


def setting(cfg: RobustPUConfig, axis: str | None = None, value: float | None = None) -> dict:
    """The corruption of one point on ``axis`` (the others at their base values)."""
    out = {"outlier_fraction": cfg.base_outlier_fraction,
           "n_noise_features": cfg.base_noise_features, "unlabeled_ratio": None}
    if axis is not None:
        axis_values(cfg, axis)
        key = {"outlier_fraction": "outlier_fraction", "noise_features": "n_noise_features",
               "unlabeled_ratio": "unlabeled_ratio"}[axis]
        out[key] = value
    return out


def make_split(cfg: RobustPUConfig, dataset: str, *, outlier_fraction: float,
               n_noise_features: int, unlabeled_ratio: float | None, seed: int) -> PUSplit:
    """One seeded PU split of ``dataset`` with the given corruption."""
    positive = {"digits": cfg.digits_positive_class,
                "covtype": cfg.covtype_positive_class}.get(dataset)
    X, y = load_tabular(dataset, positive_class=positive, data_home=cfg.data_home)
    return make_pu_split(X, y, labeled_fraction=cfg.labeled_fraction,
                         outlier_fraction=outlier_fraction, n_noise_features=n_noise_features,
                         unlabeled_ratio=unlabeled_ratio, test_fraction=cfg.test_fraction,
                         max_train=cfg.max_train, seed=seed)


def hyperparameter_grid(cfg: RobustPUConfig, method: str) -> list[dict[str, Any]]:
    """The candidates PU validation chooses among, for ``method``."""
    if method in ("robust_auc", "plain_auc"):
        return [{"loss": loss, "l2": l2} for loss in cfg.loss_grid for l2 in cfg.l2_grid]
    if method == "l1_logistic":
        return [{"alpha": a} for a in cfg.l1_alpha_grid]
    if method == "elkan_noto":
        return [{"alpha": a} for a in cfg.elkan_noto_alpha_grid]
    if method == "nnpu":
        return [{"weight_decay": wd} for wd in cfg.nnpu_weight_decay_grid]
    raise ValueError(f"unknown method {method!r}; valid methods are {', '.join(METHODS)}")


def make_method(name: str, cfg: RobustPUConfig, dataset: str, *, params: dict[str, Any],
                n_samples: int, n_features: int, prior: float, seed: int):
    """An unfitted estimator for method ``name`` with hyperparameters ``params``, for a
    training set of ``n_samples`` rows and ``n_features`` features.

    ``prior`` is the true share of positives in the unlabeled pool: nnPU's assumption,
    handed to it as an oracle (which favours nnPU).
    """
    seed = seed % 2**31
    if name in ("robust_auc", "plain_auc"):
        robust = name == "robust_auc"
        k = cfg.assumed_outlier_fraction if robust else 0
        if robust and k is None:
            raise ValueError("assumed_outlier_fraction=None (true K) needs make_method's "
                             "caller to pass params['n_outliers']")
        budget = cfg.feature_budgets[cfg.datasets.index(dataset)]
        return RobustPUAUC(**{"n_outliers": k, "feature_selection": "l0" if robust else None,
                              "n_features_to_select": min(budget, n_features),
                              "max_iter": cfg.max_iter, "inner_steps": cfg.inner_steps,
                              **params})
    if name == "l1_logistic":
        return l1_logistic(1.0 / (params["alpha"] * n_samples), random_state=seed)
    if name == "elkan_noto":
        return ElkanNotoClassifier(C=1.0 / (params["alpha"] * n_samples), random_state=seed)
    if name == "nnpu":
        return NNPUClassifier(prior=prior, hidden=cfg.nnpu_hidden, epochs=cfg.nnpu_epochs,
                              lr=cfg.nnpu_lr, batch_size=cfg.nnpu_batch_size,
                              weight_decay=params["weight_decay"], random_state=seed,
                              device=cfg.device)
    raise ValueError(f"unknown method {name!r}; valid methods are {', '.join(METHODS)}")


def _method_params(cfg: RobustPUConfig, name: str, params: dict[str, Any],
                   split: PUSplit) -> dict[str, Any]:
    if name == "robust_auc" and cfg.assumed_outlier_fraction is None:  # oracle K
        return {**params, "n_outliers": int(split.outlier_mask.sum())}
    return params


def pu_validation_auc(cfg: RobustPUConfig, name: str, dataset: str, params: dict[str, Any],
                      split: PUSplit, seed: int) -> float:
    """Mean over ``cv_folds`` stratified folds of the PU training set of the AUC of labeled
    (s=1) vs unlabeled (s=0) held-out rows: no true label is used.

    Under "selected completely at random" labeling with outliers drawn at random from the
    negatives, its expectation is affine in the true AUC with a positive slope
    ``(1-f)(1-pi) - f pi`` (f = outlier share, pi = positive share of the unlabeled rows),
    so it ranks candidates as the true AUC would.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=cfg.cv_folds, shuffle=True, random_state=seed % 2**31)
    aucs = []
    for idx_fit, idx_val in folds.split(split.X_train, split.s_train):
        fold_params = params
        if name == "robust_auc" and cfg.assumed_outlier_fraction is None:  # oracle K
            fold_params = {**params, "n_outliers": int(split.outlier_mask[idx_fit].sum())}
        model = make_method(name, cfg, dataset, params=fold_params, n_samples=len(idx_fit),
                            n_features=split.X_train.shape[1], prior=split.prior_unlabeled,
                            seed=seed).fit(split.X_train[idx_fit], split.s_train[idx_fit])
        aucs.append(roc_auc_score(split.s_train[idx_val],
                                  model.decision_function(split.X_train[idx_val])))
    return float(np.mean(aucs))


def tune(cfg: RobustPUConfig, dataset: str, seed: int = 0, axis: str | None = None,
         value: float | None = None) -> dict[str, Any]:
    """Pick each method's hyperparameters by PU validation AUC, averaged over
    ``n_tune_seeds`` tuning splits made with the corruption of the point (``axis``,
    ``value``) (the base setting when ``axis`` is None); their seeds are disjoint from the
    evaluation splits'. Ties go to the first candidate in grid order."""
    splits = [make_split(cfg, dataset, seed=derive_seed(seed, dataset, "tune", axis, value, r),
                         **setting(cfg, axis, value)) for r in range(cfg.n_tune_seeds)]
    rows, best = [], {}
    for name in cfg.methods:
        grid = hyperparameter_grid(cfg, name)
        if len(grid) == 1:  # nothing to choose
            best[name] = grid[0]
            continue
        scored = []
        for params in grid:
            vals = [pu_validation_auc(cfg, name, dataset, params, sp, derive_seed(seed, "val", r))
                    for r, sp in enumerate(splits)]
            scored.append((float(np.mean(vals)), params))
            rows.append({"dataset": dataset, "axis": axis, "value": value, "method": name,
                         **params, "pu_validation_auc": float(np.mean(vals))})
        best[name] = max(scored, key=lambda t: t[0])[1]
    return {"params": best, "rows": rows}


def _precision_recall(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hit = int((found & truth).sum())
    precision = hit / found.sum() if found.sum() else float("nan")
    recall = hit / truth.sum() if truth.sum() else float("nan")
    return float(precision), float(recall)


def evaluate_split(cfg: RobustPUConfig, dataset: str, split: PUSplit, seed: int,
                   params: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Fit every method on one split; test AUC on true labels, and what the method found."""
    from sklearn.metrics import roc_auc_score

    rows = []
    for name in cfg.methods:
        model = make_method(name, cfg, dataset,
                            params=_method_params(cfg, name, params[name], split),
                            n_samples=len(split.s_train), n_features=split.X_train.shape[1],
                            prior=split.prior_unlabeled, seed=seed).fit(split.X_train,
                                                                        split.s_train)
        row = {"method": name,
               "auc": float(roc_auc_score(split.y_test, model.decision_function(split.X_test)))}
        if isinstance(model, RobustPUAUC):
            op, orc = _precision_recall(model.outlier_mask_, split.outlier_mask)
            fp, fr = _precision_recall(model.support_, split.informative_mask)
            row.update(outlier_precision=op, outlier_recall=orc, feature_precision=fp,
                       feature_recall=fr, n_selected=int(model.support_.sum()),
                       noise_selected=int((model.support_ & ~split.informative_mask).sum()),
                       n_iter=model.n_iter_)
        rows.append(row)
    return rows


def evaluate_point(cfg: RobustPUConfig, dataset: str, axis: str, value: float, seed: int = 0,
                   params: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One point of a sweep: tune every method there (unless ``params`` are given), then
    fit and test every method on ``n_seeds`` evaluation splits. The split seeds depend on
    the table and the repetition only, so the points of an axis are paired."""
    tuned = {"params": params, "rows": []} if params is not None else tune(cfg, dataset, seed,
                                                                              axis, value)
    rows = []
    for rep in range(cfg.n_seeds):
        split_seed = derive_seed(seed, dataset, rep)
        split = make_split(cfg, dataset, seed=split_seed, **setting(cfg, axis, value))
        for row in evaluate_split(cfg, dataset, split, split_seed, tuned["params"]):
            rows.append({"dataset": dataset, "axis": axis, "value": float(value), "rep": rep,
                         "n_pos": split.n_labeled, "n_unl": split.n_unlabeled, **row})
    chosen = [{"dataset": dataset, "axis": axis, "value": float(value), "method": m, **p}
              for m, p in tuned["params"].items()]
    return {"rows": rows, "params": chosen, "tuning": tuned["rows"]}


def sweep(cfg: RobustPUConfig, dataset: str, axis: str, seed: int = 0, *,
          params: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Test AUC rows of every method along one axis (see :func:`evaluate_point`)."""
    return [row for value in axis_values(cfg, axis)
            for row in evaluate_point(cfg, dataset, axis, value, seed, params)["rows"]]



def _cached_point(cache_dir: str, cfg: RobustPUConfig, dataset: str, axis: str, value: float,
                  seed: int, params: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """:func:`evaluate_point` stored as its own artifact: a killed run resumes from the
    points it had finished (the checkpoint of this workload)."""
    key = {"config": cfg, "seed": seed, "dataset": dataset, "axis": axis, "value": value,
           "params": params}
    return ArtifactCache(cache_dir).get_or_create(
        "robust-pu-point", key, lambda: evaluate_point(cfg, dataset, axis, value, seed, params))


def run(cfg: RobustPUConfig, seed: int = 0, *, cache: ArtifactCache | None = None,
        show_progress: bool | None = None) -> dict[str, Any]:
    """Every point of every axis of every table, tuned and evaluated (cached as one
    artifact, and each point as its own, so an interrupted run resumes; points run in
    ``cfg.n_jobs`` processes, each seeded on its own).

    Returns ``{"rows": test rows, "params": chosen hyperparameters per point,
    "tuning": every candidate's PU validation AUC, "seconds": wall time of the build}``.
    """
    import time

    from joblib import Parallel, delayed

    cache = cache or ArtifactCache()

    def build() -> dict[str, Any]:
        t0 = time.perf_counter()
        points = [(d, a, v) for d in cfg.datasets for a in AXES for v in axis_values(cfg, a)]
        out = {"rows": [], "params": [], "tuning": []}
        fixed: dict[str, Any] = {d: None for d in cfg.datasets}
        if not cfg.tune_per_point:
            for d in cfg.datasets:
                tuned = tune(cfg, d, seed)
                fixed[d] = tuned["params"]
                out["tuning"] += tuned["rows"]
        jobs = Parallel(n_jobs=cfg.n_jobs, return_as="generator")(
            delayed(_cached_point)(str(cache.directory), cfg, d, a, v, seed, fixed[d])
            for d, a, v in points)
        for done in progress(jobs, total=len(points), desc="robust PU points",
                             enabled=show_progress):
            for key in out:
                out[key] += done[key]
        return {**out, "seconds": time.perf_counter() - t0}

    return cache.get_or_create("robust-pu-sweeps", {"config": cfg, "seed": seed}, build)


def run_is_cached(cfg: RobustPUConfig, seed: int = 0, cache: ArtifactCache | None = None) -> bool:
    return (cache or ArtifactCache()).contains("robust-pu-sweeps", {"config": cfg, "seed": seed},
                                               code=[run])


# --------------------------------------------------------------------------------------
# Tables and figures of the chapter (computed findings, never hard-coded)
# --------------------------------------------------------------------------------------

METHOD_LABELS = {"robust_auc": "robust AUC (ours)", "plain_auc": "plain AUC",
                 "l1_logistic": "l1-logistic", "elkan_noto": "Elkan-Noto", "nnpu": "nnPU"}
AXIS_LABELS = {"outlier_fraction": "label outliers (share of the labeled set)",
               "noise_features": "appended noise features (count)",
               "unlabeled_ratio": "unlabeled rows per labeled row, n_u / n+"}


def summarize(rows: list[dict[str, Any]], metric: str = "auc"):
    """Mean, standard deviation and count of ``metric`` per table, axis, value and method."""
    import pandas as pd

    df = pd.DataFrame(rows)
    return (df.groupby(["dataset", "axis", "value", "method"])[metric]
            .agg(["mean", "std", "count"]).reset_index())


def auc_table(rows: list[dict[str, Any]], axis: str):
    """Test AUC as "mean ± std" with tables and axis values as rows, methods as columns."""
    summary = summarize(rows)
    summary = summary[summary.axis == axis]
    cell = summary.apply(lambda r: f"{r['mean']:.3f} ± {r['std']:.3f}", axis=1)
    table = summary.assign(cell=cell).pivot(index=["dataset", "value"], columns="method",
                                            values="cell")
    return table[[m for m in METHODS if m in table.columns]].rename(columns=METHOD_LABELS)


def axis_finding(rows: list[dict[str, Any]], axis: str, dataset: str) -> dict[str, Any]:
    """At the hardest point of ``axis`` (most outliers / noise, fewest unlabeled rows): the
    mean AUC of each method, the best method, and robust minus plain AUC."""
    summary = summarize(rows)
    s = summary[(summary.axis == axis) & (summary.dataset == dataset)]
    hardest = s.value.min() if axis == "unlabeled_ratio" else s.value.max()
    at = s[s.value == hardest].set_index("method")["mean"]
    return {"value": float(hardest), "auc": at.to_dict(), "best": str(at.idxmax()),
            "robust_minus_plain": float(at.get("robust_auc", np.nan) - at.get("plain_auc", np.nan))}


def saturation(rows: list[dict[str, Any]], dataset: str, method: str = "robust_auc",
               tolerance: float = 0.01) -> dict[str, Any]:
    """The paper's practical claim on the unlabeled sample: the smallest n_u / n+ whose mean
    AUC is within ``tolerance`` of the best mean AUC over all ratios tried."""
    summary = summarize(rows)
    s = summary[(summary.axis == "unlabeled_ratio") & (summary.dataset == dataset)
                & (summary.method == method)].sort_values("value")
    best = s["mean"].max()
    enough = s[s["mean"] >= best - tolerance]
    auc_at_1 = s.loc[np.isclose(s.value, 1.0), "mean"]
    return {"ratio": float(enough.value.iloc[0]), "best_auc": float(best),
            "best_ratio": float(s.loc[s["mean"].idxmax(), "value"]),
            "auc_at_1": float(auc_at_1.iloc[0]) if len(auc_at_1) else float("nan")}


def signed(x: float) -> str:
    """``+0.012``, ``-0.004``, and ``0.000`` rather than ``-0.000``."""
    return "0.000" if abs(x) < 5e-4 else f"{x:+.3f}"


def axis_title(rows: list[dict[str, Any]], axis: str, datasets: tuple[str, ...]) -> str:
    """The finding of one axis, as measured: robust minus plain AUC at the hardest point, or,
    for the unlabeled sample, the ratio from which robust AUC is within 0.01 of its best."""
    if axis == "unlabeled_ratio":
        sat = [f"{saturation(rows, d)['ratio']:g} ({d})" for d in datasets]
        return f"Robust AUC comes within 0.01 of its best from n_u/n+ = {' and '.join(sat)}"
    found = [axis_finding(rows, axis, d) for d in datasets]
    gaps = " and ".join(f"{signed(f['robust_minus_plain'])} ({d})"
                        for d, f in zip(datasets, found, strict=True))
    where = {"outlier_fraction": f"At {found[0]['value']:.0%} label outliers",
             "noise_features": f"With {found[0]['value']:g} noise features"}[axis]
    return f"{where}, robust AUC minus plain AUC is {gaps}"


def plot_axis(rows: list[dict[str, Any]], axis: str, axes) -> None:
    """Mean test AUC (error bars: std over seeds) of every method along ``axis``, one panel
    per table."""
    from lib.core.plotting import finding_axes, method_color

    summary = summarize(rows)
    for ax, dataset in zip(axes, summary.dataset.unique(), strict=False):
        s = summary[(summary.axis == axis) & (summary.dataset == dataset)]
        for method in METHODS:
            m = s[s.method == method].sort_values("value")
            if len(m):
                ax.errorbar(m.value, m["mean"], yerr=m["std"], marker="o", capsize=3,
                            color=method_color(method), label=METHOD_LABELS[method],
                            lw=2.5 if method == "robust_auc" else 1.2)
        if axis == "unlabeled_ratio":
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(s.value.unique()), [f"{v:g}" for v in sorted(s.value.unique())])
        f = axis_finding(rows, axis, dataset)
        finding_axes(ax, title=f"{dataset}: best at {f['value']:g} is {METHOD_LABELS[f['best']]}",
                     xlabel=AXIS_LABELS[axis], ylabel="test AUC (true labels)", legend=False)
    axes[0].legend(fontsize=8)


def detection_table(rows: list[dict[str, Any]], axis: str):
    """Precision/recall of the flagged outliers and of the selected features (robust AUC),
    mean over seeds, along ``axis``."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows if r["method"] == "robust_auc" and r["axis"] == axis])
    cols = ["outlier_precision", "outlier_recall", "feature_precision", "feature_recall",
            "noise_selected"]
    return df.groupby(["dataset", "value"])[cols].mean().round(3)


def params_table(params: list[dict[str, Any]]):
    """The hyperparameters PU validation chose at each point, one column per method."""
    import pandas as pd

    df = pd.DataFrame(params)
    keys = [c for c in df.columns if c not in ("dataset", "axis", "value", "method")]
    df["chosen"] = df.apply(lambda r: ", ".join(f"{k}={r[k]:g}" if isinstance(r[k], float)
                                                else f"{k}={r[k]}" for k in keys
                                                if pd.notna(r[k])), axis=1)
    table = df.pivot(index=["dataset", "axis", "value"], columns="method", values="chosen")
    table = table[[m for m in METHODS if m in table.columns]].rename(columns=METHOD_LABELS)
    if (table.groupby(level="dataset").nunique() <= 1).all().all():  # tuned once per table
        table = table.groupby(level="dataset").first()
    return table


def axis_drops(rows: list[dict[str, Any]], axis: str, dataset: str) -> dict[str, float]:
    """Mean AUC at the easiest point minus at the hardest point of ``axis``, per method."""
    summary = summarize(rows)
    s = summary[(summary.axis == axis) & (summary.dataset == dataset)]
    easy, hard = ((s.value.max(), s.value.min()) if axis == "unlabeled_ratio"
                  else (s.value.min(), s.value.max()))
    at = {v: s[s.value == v].set_index("method")["mean"] for v in (easy, hard)}
    return {m: float(at[easy][m] - at[hard][m]) for m in METHODS if m in at[easy].index}


# ------------------------------------------------------------------------------ claims
CLAIMS = [
    Claim.interval("robust_pu", "outliers",
                   "Robust AUC learning resists mislabeled positives better than plain AUC "
                   "maximization", paper="qualitative (synthetic and clinical data)",
                   prefix="auc_robust_vs_plain_outliers", paper_effect=0.01,
                   unit="test AUC difference"),
]
DATA_PARALLEL = False
