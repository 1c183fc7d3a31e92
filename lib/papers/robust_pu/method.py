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

The code is in ``lib.tabular.robust_auc`` (a PU learner another chapter can use); this
module names the paper's steps and re-exports them for the chapter.

**O(n) pair sums.** For the square loss ``sum_j (1 - a_i + b_j)^2 = n_u (1 - a_i)^2 +
2 (1 - a_i) sum_j b_j + sum_j b_j^2``: every per-positive loss, the objective and its
gradient come from two sums over the unlabeled rows (the trick behind one-pass AUC,
Gao et al. 2013). The squared hinge only sums over active pairs ``b_j > a_i - 1``: sorting
plus prefix sums gives ``O(n log n)``. The logistic loss has no such structure: ``O(n+ n_u)``.
"""


# ruff: noqa: F401
from lib.tabular.robust_auc import (
    FEATURE_SELECTION,
    LOSSES,
    RobustPUAUC,
    RobustPUFit,
    fit_robust_pu_auc,  # steps 1-4
    hard_threshold,  # H_s of step 3
    logistic_pair_terms,
    pair_terms,
    pair_terms_bruteforce,
    penalty,
    select_inliers,  # step 2, the p-step
    smooth_objective,  # F and its gradient
    soft_threshold,  # the l1 prox of step 3 (lib.sparse.projections)
    square_pair_terms,  # the O(n) pair sums
    squared_hinge_pair_terms,
    w_step,  # step 3, the w-step
)
