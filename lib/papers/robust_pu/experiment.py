"""The robust-PU chapter's experiments: configs, the baselines (plain AUC, l1-logistic,
Elkan-Noto, nnPU), PU-validation tuning, the three corruption sweeps, their tables and
figures, and the claim. The algorithm is in ``method.py``; the tables and their PU splits in
``lib.tabular``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lib.core import ArtifactCache, ScaleConfigs, derive_seed
from lib.core.claims import Claim, verdict_rows
from lib.core.limits import limit_steps, step_limit
from lib.core.progress import progress
from lib.core.stats import Interval, paired_bootstrap
from lib.core.stats import verdict as interval_verdict
from lib.tabular import pu_data
from lib.tabular.pu_baselines import ElkanNotoClassifier, NNPUClassifier, l1_logistic
from lib.tabular.pu_data import PUSplit, load_tabular, make_pu_split
from lib.tabular.robust_auc import LOSSES, RobustPUAUC

METHODS = ("robust_auc", "plain_auc", "outliers_only", "features_only", "l1_logistic",
           "elkan_noto", "nnpu")
#: The robust AUC family: the method, its two ablations (one component each) and plain AUC;
#: they share the solver and the hyperparameter grid (loss x l2).
AUC_FAMILY = ("robust_auc", "plain_auc", "outliers_only", "features_only")
AXES = ("outlier_fraction", "noise_features", "unlabeled_ratio")


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
        unlabeled_ratios=(0.25, 0.5, 1.0, 2.0, 4.0), max_iter=20, tune_per_point=True,
        n_tune_seeds=2, n_jobs=2,
        # the same effort for every method: 4 candidates each, scored by PU validation at
        # every point (tuned once at the base setting, the ablation without feature selection
        # kept digits' weak l2 = 0.1 at 300 noise features: 0.13 AUC below plain AUC)
        loss_grid=("square",), l2_grid=(0.1, 1.0, 10.0, 100.0),
        l1_alpha_grid=(0.01, 0.03, 0.1, 0.3), elkan_noto_alpha_grid=(0.1, 0.3, 1.0, 3.0),
        nnpu_weight_decay_grid=(1e-4, 1e-3, 1e-2, 1e-1)),
    full=RobustPUConfig(
        datasets=("breast_cancer", "digits", "covtype"), feature_budgets=(10, 20, 20),
        n_seeds=20, outlier_fractions=(0.0, 0.05, 0.1, 0.2, 0.3, 0.4),
        noise_features=(0, 30, 100, 300, 1000), unlabeled_ratios=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
        max_train=50_000, max_iter=50, n_tune_seeds=3, cv_folds=5, n_jobs=4,
        # the same effort for every method: 7 candidates each
        loss_grid=("square",), l2_grid=(1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0),
        l1_alpha_grid=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
        elkan_noto_alpha_grid=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
        nnpu_weight_decay_grid=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0), nnpu_epochs=200,
        device="cuda"),
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
    if method in AUC_FAMILY:
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
    if name in AUC_FAMILY:
        # outlier removal in robust_auc and outliers_only, feature selection in robust_auc
        # and features_only, neither in plain_auc: the ablations differ in one component
        removes = name in ("robust_auc", "outliers_only")
        selects = name in ("robust_auc", "features_only")
        k = cfg.assumed_outlier_fraction if removes else 0
        if removes and k is None:
            raise ValueError("assumed_outlier_fraction=None (true K) needs make_method's "
                             "caller to pass params['n_outliers']")
        budget = cfg.feature_budgets[cfg.datasets.index(dataset)]
        return RobustPUAUC(**{"n_outliers": k, "feature_selection": "l0" if selects else None,
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
    if name in ("robust_auc", "outliers_only") and cfg.assumed_outlier_fraction is None:
        return {**params, "n_outliers": int(split.outlier_mask.sum())}     # oracle K
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
        if name in ("robust_auc", "outliers_only") and cfg.assumed_outlier_fraction is None:
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


def per_positive_auc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each test positive's share of test negatives it outscores (ties count half): their
    mean is the AUC exactly, so a bootstrap over these items (and seeds) gives its interval."""
    y, scores = np.asarray(y), np.asarray(scores, dtype=np.float64)
    neg = np.sort(scores[y == 0])
    pos = scores[y == 1]
    if not len(neg) or not len(pos):
        raise ValueError("the AUC needs positive and negative test rows")
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return (below + 0.5 * ties) / len(neg)


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
        scores = model.decision_function(split.X_test)
        row = {"method": name, "auc": float(roc_auc_score(split.y_test, scores)),
               "auc_items": per_positive_auc(split.y_test, scores).tolist()}
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


def dry_run_config(cfg: RobustPUConfig) -> RobustPUConfig:
    """``cfg`` itself, or under a dry run's step limit (``BOOK_MAX_STEPS`` = N) the same
    experiment with every repetition capped: N evaluation and tuning splits, N (at least 2)
    validation folds, the first N values of each axis and of each hyperparameter grid (the
    solver's alternations and nnPU's epochs are capped where they loop). Every table and
    method still runs, tuned by PU validation."""
    if step_limit() is None:
        return cfg

    def first(values: tuple) -> tuple:
        return tuple(values[:limit_steps(len(values))])

    return replace(cfg, n_seeds=limit_steps(cfg.n_seeds),
                   n_tune_seeds=limit_steps(cfg.n_tune_seeds),
                   cv_folds=max(2, limit_steps(cfg.cv_folds)),
                   outlier_fractions=first(cfg.outlier_fractions),
                   noise_features=first(cfg.noise_features),
                   unlabeled_ratios=first(cfg.unlabeled_ratios), loss_grid=first(cfg.loss_grid),
                   l2_grid=first(cfg.l2_grid), l1_alpha_grid=first(cfg.l1_alpha_grid),
                   elkan_noto_alpha_grid=first(cfg.elkan_noto_alpha_grid),
                   nnpu_weight_decay_grid=first(cfg.nnpu_weight_decay_grid))


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
    cfg = dry_run_config(cfg)

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
    return (cache or ArtifactCache()).contains("robust-pu-sweeps",
                                               {"config": dry_run_config(cfg), "seed": seed},
                                               code=[run])


# --------------------------------------------------------------------------------------
# Tables and figures of the chapter (computed findings, never hard-coded)
# --------------------------------------------------------------------------------------

METHOD_LABELS = {"robust_auc": "robust AUC (ours)", "plain_auc": "plain AUC",
                 "outliers_only": "outlier removal only", "features_only": "feature selection only",
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


# --------------------------------------------------------------------------------------
# Paired differences (seeds x test positives) and ablations
# --------------------------------------------------------------------------------------

#: (method, baseline) pairs of the paired table: the method against plain AUC, against each
#: ablation, each ablation against plain AUC (what one component adds), and the baselines.
PAIRS = (("robust_auc", "plain_auc"), ("outliers_only", "plain_auc"),
         ("features_only", "plain_auc"), ("robust_auc", "outliers_only"),
         ("robust_auc", "features_only"), ("robust_auc", "l1_logistic"),
         ("robust_auc", "elkan_noto"), ("robust_auc", "nnpu"))


def paired_auc(rows: list[dict[str, Any]], dataset: str, axis: str, value: float,
               method: str, baseline: str) -> Interval:
    """95% interval of ``AUC(method) - AUC(baseline)`` at one point, paired over the
    evaluation splits and their test positives (``per_positive_auc`` items; when the splits'
    test sets differ in size, over splits only)."""
    def stack(name):
        sel = sorted((r for r in rows if r["dataset"] == dataset and r["axis"] == axis
                      and np.isclose(r["value"], value) and r["method"] == name),
                     key=lambda r: r["rep"])
        if not sel:
            raise ValueError(f"no rows of {name} at {dataset}/{axis}={value}")
        sizes = {len(r["auc_items"]) for r in sel}
        if len(sizes) == 1:
            return np.array([r["auc_items"] for r in sel])
        return np.array([r["auc"] for r in sel])

    return paired_bootstrap(stack(method), stack(baseline))


def hardest_value(cfg: RobustPUConfig, axis: str,
                  rows: list[dict[str, Any]] | None = None) -> float:
    """The hardest point of an axis: most outliers, most noise, fewest unlabeled rows (of
    the points ``rows`` hold, when given: a dry run runs the first values only)."""
    values = ({r["value"] for r in rows if r["axis"] == axis} if rows
              else set(axis_values(cfg, axis)))
    return float(min(values) if axis == "unlabeled_ratio" else max(values))


#: The smallest gain we call an effect (the abstract gives none: our reading), in test AUC.
PAPER_EFFECT = 0.01


def paired_table(rows: list[dict[str, Any]], cfg: RobustPUConfig) -> list[dict[str, Any]]:
    """Every pair of PAIRS at the hardest outlier and noise points of every table."""
    present = {r["method"] for r in rows}
    out = []
    for dataset in cfg.datasets:
        for axis in ("outlier_fraction", "noise_features"):
            value = hardest_value(cfg, axis, rows)
            for a, b in PAIRS:
                if a in present and b in present:
                    iv = paired_auc(rows, dataset, axis, value, a, b)
                    out.append({"dataset": dataset, "axis": axis, "value": value,
                                "comparison": f"{METHOD_LABELS[a]} - {METHOD_LABELS[b]}",
                                "difference [95% interval]":
                                    f"{signed(iv.estimate)} [{signed(iv.lo)}, {signed(iv.hi)}]",
                                "reading (vs +0.01)": interval_verdict(iv, PAPER_EFFECT),
                                "difference": iv.estimate, "95% low": iv.lo, "95% high": iv.hi,
                                "splits": iv.n_seeds, "test positives": iv.n_items})
    return out


#: claim prefix -> (axis, method, baseline); the interval is on the first table of the config
_CLAIM_PAIRS = {"auc_robust_vs_plain_outliers": ("outlier_fraction", "robust_auc", "plain_auc"),
                "auc_removal_vs_plain_outliers": ("outlier_fraction", "outliers_only",
                                                  "plain_auc"),
                "auc_selection_vs_plain_noise": ("noise_features", "features_only", "plain_auc"),
                "auc_robust_vs_plain_noise": ("noise_features", "robust_auc", "plain_auc")}


def claim_metrics(rows: list[dict[str, Any]], cfg: RobustPUConfig) -> dict[str, float]:
    """The claims' intervals (``Interval.as_metrics``) on every table: the first table's
    under the claims' prefixes, every table's under ``{prefix}_{table}``."""
    present = {r["method"] for r in rows}
    metrics: dict[str, float] = {}
    for prefix, (axis, a, b) in _CLAIM_PAIRS.items():
        if a not in present or b not in present:
            continue
        for i, dataset in enumerate(cfg.datasets):
            iv = paired_auc(rows, dataset, axis, hardest_value(cfg, axis, rows), a, b)
            metrics |= iv.as_metrics(f"{prefix}_{dataset}")
            if i == 0:
                metrics |= iv.as_metrics(prefix)
    return metrics


def verdict_table(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """Each claim, what we measured and the verdict (``lib.core.claims``)."""
    return verdict_rows(CLAIMS, metrics)


# ------------------------------------------------------------------------------ claims
#: claim id, claim prefix, what is claimed (one claim per component and per tutorial table)
_CLAIM_TEXT = (
    ("outliers", "auc_robust_vs_plain_outliers",
     "Robust AUC learning resists mislabeled positives better than plain AUC maximization "
     "(most label outliers)", "qualitative (synthetic and clinical data)"),
    ("outlier-removal", "auc_removal_vs_plain_outliers",
     "Outlier removal alone (no feature selection) raises the test AUC over plain AUC "
     "maximization when positives are mislabeled", "qualitative (outlier-detection component)"),
    ("feature-selection", "auc_selection_vs_plain_noise",
     "Feature selection alone (no outlier removal) raises the test AUC over plain AUC "
     "maximization when noise features are appended",
     "qualitative (feature-selection component)"),
)
#: the tables the claims are judged on, with the label of their claim ids (the first table
#: under the bare id: a smoke run has breast cancer only)
_CLAIM_TABLES = (("breast_cancer", ""), ("digits", "-digits"))

CLAIMS = [
    Claim.interval("robust_pu", f"{cid}{suffix}", f"{text} ({table.replace('_', ' ')})",
                   paper=f"{paper}; +{PAPER_EFFECT:g} AUC: our reading",
                   prefix=f"{prefix}_{table}", paper_effect=PAPER_EFFECT,
                   unit="test AUC difference")
    for table, suffix in _CLAIM_TABLES for cid, prefix, text, paper in _CLAIM_TEXT
]


def findings_lines(rows: list[dict[str, Any]], cfg: RobustPUConfig,
                   findings: dict[str, list[dict[str, Any]]], sat: dict[str, dict[str, Any]],
                   metrics: dict[str, Any]) -> list[str]:
    """The chapter's "what we see" summary, from the measured numbers: where robust AUC
    ranks at the hardest point of each axis (with the paired interval against plain AUC on
    the outlier and noise axes), which method loses most and least along each axis, where
    the unlabeled sample saturates, and each claim's verdict."""
    present = {r["method"] for r in rows}
    lines = []
    for axis, found in findings.items():
        for d, f in zip(cfg.datasets, found, strict=True):
            rank = sorted(f["auc"], key=f["auc"].get, reverse=True).index("robust_auc") + 1
            note = ""
            if axis != "unlabeled_ratio" and {"robust_auc", "plain_auc"} <= present:
                iv = paired_auc(rows, d, axis, f["value"], "robust_auc", "plain_auc")
                note = f", paired 95% interval [{signed(iv.lo)}, {signed(iv.hi)}]"
            lines.append(f"{axis} = {f['value']:g} on {d}: robust AUC "
                         f"{f['auc']['robust_auc']:.3f}, rank {rank} of {len(f['auc'])} (best: "
                         f"{METHOD_LABELS[f['best']]} {f['auc'][f['best']]:.3f}); vs plain AUC "
                         f"{signed(f['robust_minus_plain'])}{note}")
        for d in cfg.datasets:
            drops = axis_drops(rows, axis, d)
            worst, best = max(drops, key=drops.get), min(drops, key=drops.get)
            lines.append(f"    easiest to hardest {axis} on {d}: largest AUC loss "
                         f"{METHOD_LABELS[worst]} ({drops[worst]:.3f}), smallest "
                         f"{METHOD_LABELS[best]} ({signed(drops[best])})")
    for d, s in sat.items():
        lines.append(f"unlabeled sample on {d}: within 0.01 of the best AUC from n_u/n+ = "
                     f"{s['ratio']:g} ({'consistent with' if s['ratio'] <= 1 else 'later than'} "
                     "the paper's n_u ~ n+)")
    lines += [f"claim {v['id']}: {v['verdict']} ({v['measured']})" for v in verdict_table(metrics)]
    return lines
