r"""Robust AUC maximization for positive-unlabeled (PU) data: the O(n) pairwise-loss sums,
the alternating solver over an outlier indicator and a sparse weight vector, and its
scikit-learn estimator (``RobustPUAUC``).

The objective (our reading of Ren et al., TNNLS 2019; ``lib/papers/robust_pu/method.py``
states it step by step with its equations): a linear score ``f(x) = w'x``; positives ``x_i``
(i <= n+) and unlabeled rows ``u_j`` (j <= n_u, treated as negatives for the AUC); a pairwise
surrogate ``phi`` of the margin ``z = a_i - b_j`` (``a = Xp w``, ``b = Xu w``); an indicator
``p`` keeping ``n+ - K`` positives; a budget ``s`` (``|w|_0 <= s``) or an l1 penalty::

    F(w, p) = 1/((n+ - K) n_u) sum_i p_i sum_j phi(a_i - b_j) + l2/2 |w|^2

Surrogates: square ``(1 - z)^2``, squared hinge ``max(0, 1 - z)^2``, logistic
``log(1 + e^{-z})``.

**O(n) pair sums.** For the square loss ``sum_j (1 - a_i + b_j)^2 = n_u (1 - a_i)^2 +
2 (1 - a_i) sum_j b_j + sum_j b_j^2``: every per-positive loss, the objective and its
gradient come from two sums over the unlabeled rows (the trick behind one-pass AUC,
Gao et al. 2013). The squared hinge only sums over active pairs ``b_j > a_i - 1``: sorting
plus prefix sums gives ``O(n log n)``. The logistic loss has no such structure: ``O(n+ n_u)``.

Hand-written: no well-kept library has a pairwise-AUC solver with an outlier indicator and
an l0 budget (scikit-learn's linear models minimise per-row losses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from lib.core.limits import limit_steps
from lib.sparse.projections import soft_threshold  # the library's one soft threshold

from .pu_baselines import pu_labels

LOSSES = ("square", "squared_hinge", "logistic")
FEATURE_SELECTION = ("l0", "l1", None)


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
    """The alternating solver (our reading; the steps are those of
    ``lib/papers/robust_pu/method.py``): 1. warm start with every positive kept; 2. p-step,
    keep the ``n+ - K`` positives of smallest pair loss; 3. w-step, projected gradient
    steps; 4. stop once ``p`` is stable and ``F`` has settled."""
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
    for _ in range(limit_steps(warm_steps)):      # a dry run's step limit caps every loop
        w, eta = w_step(w, Xp, Xu, p, eta=eta, **step_kw)
    history: list[dict[str, Any]] = []
    n_iter = 0
    for n_iter in range(1, limit_steps(max_iter) + 1):
        # 2. p-step: keep the n+ - K positives of smallest pair loss
        _, per_pos = full_objective(w, p)
        p_new = select_inliers(per_pos, n_pos - n_outliers)
        changed = n_iter == 1 or bool((p_new != p).any())
        p = p_new
        history.append({"iter": n_iter, "half": "p", "objective": full_objective(w, p)[0]})
        # 3. w-step: projected gradient steps with p fixed
        for _ in range(limit_steps(inner_steps)):
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
