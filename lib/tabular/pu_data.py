"""Positive-unlabeled (PU) data sets built from ordinary labeled tables, all seeded.

A PU training set holds a few rows labeled "positive" (``s = 1``) and many unlabeled rows
(``s = 0``) that mix positives and negatives. :func:`make_pu_split` builds one from a
table with true labels ``y`` in three corruptions the robust-PU chapter studies:

* **labeled fraction**: only ``labeled_fraction`` of the training positives are labeled;
  the other positives hide among the unlabeled rows;
* **label outliers**: negatives wrongly labeled positive, so that they make up
  ``outlier_fraction`` of the labeled set (``K / (n_labeled + K)``);
* **noise features**: ``n_noise_features`` columns of N(0, 1) noise appended to every row.

``unlabeled_ratio`` subsamples the unlabeled rows to ``ratio * n_+`` (``n_+`` counts every
row labeled positive, outliers included), for the "unlabeled as many as positives
suffices" experiment. The test split keeps its true labels (AUC is measured on them).

Tables: scikit-learn's bundled breast cancer (positive = malignant) and digits
(one-vs-rest), and, at full scale only, forest cover types (``fetch_covtype``, a download:
``python data_scripts/fetch_covtype.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Tables shipped inside scikit-learn (no download).
BUNDLED_DATASETS = ("breast_cancer", "digits")
#: Every table :func:`load_tabular` knows.
DATASETS = (*BUNDLED_DATASETS, "covtype")
FETCH_COVTYPE = "python data_scripts/fetch_covtype.py"


@dataclass(frozen=True)
class PUSplit:
    """One seeded PU train/test split (rows of ``X_train`` are shuffled)."""

    X_train: np.ndarray          # (n_train, d) features, noise columns last
    s_train: np.ndarray          # (n_train,) 1 = labeled positive (outliers too), 0 = unlabeled
    y_train: np.ndarray          # (n_train,) true labels, for evaluation only
    outlier_mask: np.ndarray     # (n_train,) True for the injected label outliers
    informative_mask: np.ndarray  # (d,) True for the table's own features, False for noise
    X_test: np.ndarray
    y_test: np.ndarray
    #: share of positives in the pool the unlabeled rows are drawn from (before any
    #: ``unlabeled_ratio`` subsampling): the class prior nnPU assumes known
    prior_unlabeled: float

    @property
    def n_labeled(self) -> int:
        return int(self.s_train.sum())

    @property
    def n_unlabeled(self) -> int:
        return int((self.s_train == 0).sum())



def covtype_home(data_home: str | Path | None = None) -> Path:
    """scikit-learn's data home for covtype: ``data_home``, else ``<data root>/scikit_learn``
    (``lib.core.paths.data_dir``), where ``data_scripts/fetch_covtype.py`` puts it."""
    from lib.core.paths import data_dir

    return Path(data_home).expanduser() if data_home else data_dir() / "scikit_learn"


def load_tabular(name: str, *, positive_class: int | None = None,
                 data_home: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features (float64) and binary labels (1 = positive) of a table.

    ``breast_cancer``: 569 x 30, positive = malignant (212 rows). ``digits``: 1797 x 64,
    positive = the digit ``positive_class`` (default 3), the rest negative. ``covtype``:
    581012 x 54, positive = cover type ``positive_class`` (default 4, Cottonwood/Willow,
    0.47% of rows); it must have been fetched (``python data_scripts/fetch_covtype.py``).
    """
    from sklearn import datasets

    if name == "breast_cancer":
        if positive_class is not None:
            raise ValueError("breast_cancer has a fixed positive class (malignant); "
                             "pass positive_class=None")
        X, y = datasets.load_breast_cancer(return_X_y=True)
        return X.astype(np.float64), (y == 0).astype(np.int64)  # sklearn: 0 = malignant
    if name == "digits":
        digit = 3 if positive_class is None else positive_class
        if digit not in range(10):
            raise ValueError(f"digits positive_class must be 0..9, got {digit!r}")
        X, y = datasets.load_digits(return_X_y=True)
        return X.astype(np.float64), (y == digit).astype(np.int64)
    if name == "covtype":
        cover = 4 if positive_class is None else positive_class
        if cover not in range(1, 8):
            raise ValueError(f"covtype positive_class must be 1..7, got {cover!r}")
        where = covtype_home(data_home)
        try:
            bunch = datasets.fetch_covtype(data_home=str(where), download_if_missing=False)
        except OSError as err:
            raise FileNotFoundError(
                f"the covtype table is not under {where} ({err}); it is a download, used at "
                f"full scale only: fetch it with `{FETCH_COVTYPE} --data-home {where}`"
                ) from err
        return (np.asarray(bunch.data, dtype=np.float64),
                (np.asarray(bunch.target) == cover).astype(np.int64))
    raise ValueError(f"unknown table {name!r}; valid tables are {', '.join(DATASETS)}")


def _check_fraction(name: str, value: float, *, upper_open: bool = True) -> None:
    ok = 0.0 <= value < 1.0 if upper_open else 0.0 < value <= 1.0
    if not ok:
        bound = "[0, 1)" if upper_open else "(0, 1]"
        raise ValueError(f"{name} must lie in {bound}, got {value!r}")


def make_pu_split(X: np.ndarray, y: np.ndarray, *, labeled_fraction: float = 0.3,
                  outlier_fraction: float = 0.0, n_noise_features: int = 0,
                  unlabeled_ratio: float | None = None, test_fraction: float = 0.25,
                  max_train: int | None = None, seed: int = 0) -> PUSplit:
    """A seeded PU split of ``(X, y)`` (see the module docstring for each corruption).

    ``max_train`` caps the training rows (stratified subsample) for very large tables.
    """
    from sklearn.model_selection import train_test_split

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be 2-D and y 1-D of the same length, got {X.shape}, {y.shape}")
    if set(np.unique(y).tolist()) != {0, 1}:
        raise ValueError(f"y must hold the true labels 0 and 1, got {np.unique(y)[:10]}")
    _check_fraction("labeled_fraction", labeled_fraction, upper_open=False)
    _check_fraction("outlier_fraction", outlier_fraction)
    _check_fraction("test_fraction", test_fraction)
    if n_noise_features < 0:
        raise ValueError(f"n_noise_features must be >= 0, got {n_noise_features}")
    if unlabeled_ratio is not None and unlabeled_ratio <= 0:
        raise ValueError(f"unlabeled_ratio must be > 0 or None, got {unlabeled_ratio}")
    rng = np.random.default_rng(seed)

    split_seed = int(rng.integers(2**31 - 1))
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_fraction, stratify=y,
                                          random_state=split_seed)
    if max_train is not None and len(ytr) > max_train:
        Xtr, _, ytr, _ = train_test_split(Xtr, ytr, train_size=max_train, stratify=ytr,
                                          random_state=split_seed)
    pos, neg = np.flatnonzero(ytr == 1), np.flatnonzero(ytr == 0)
    n_lab = max(1, int(round(labeled_fraction * len(pos))))
    labeled = rng.choice(pos, n_lab, replace=False)
    # K / (n_lab + K) = outlier_fraction
    k = int(round(outlier_fraction / (1.0 - outlier_fraction) * n_lab))
    if k >= len(neg):
        raise ValueError(f"{k} outliers requested but only {len(neg)} training negatives")
    outliers = rng.choice(neg, k, replace=False)
    taken = np.zeros(len(ytr), dtype=bool)
    taken[labeled] = taken[outliers] = True
    unlabeled = np.flatnonzero(~taken)
    prior = float(ytr[unlabeled].mean())
    if unlabeled_ratio is not None:
        n_u = int(round(unlabeled_ratio * (n_lab + k)))
        if not 1 <= n_u <= len(unlabeled):
            raise ValueError(f"unlabeled_ratio={unlabeled_ratio} asks for {n_u} unlabeled rows; "
                             f"1..{len(unlabeled)} are available")
        unlabeled = rng.choice(unlabeled, n_u, replace=False)

    rows = rng.permutation(np.concatenate([labeled, outliers, unlabeled]))
    s = np.isin(rows, np.concatenate([labeled, outliers])).astype(np.int64)
    is_outlier = np.isin(rows, outliers)
    noise_tr = rng.standard_normal((len(rows), n_noise_features))
    noise_te = rng.standard_normal((len(yte), n_noise_features))
    informative = np.r_[np.ones(X.shape[1], bool), np.zeros(n_noise_features, bool)]
    return PUSplit(X_train=np.hstack([Xtr[rows], noise_tr]), s_train=s,
                   y_train=ytr[rows].astype(np.int64), outlier_mask=is_outlier,
                   informative_mask=informative, X_test=np.hstack([Xte, noise_te]),
                   y_test=yte.astype(np.int64), prior_unlabeled=prior)


def make_planted_pu(*, n_samples: int = 600, positive_rate: float = 0.3, n_informative: int = 5,
                    n_noise_features: int = 25, separation: float = 3.0,
                    labeled_fraction: float = 0.5, outlier_fraction: float = 0.2,
                    unlabeled_ratio: float | None = None, seed: int = 0) -> PUSplit:
    """Synthetic PU data with planted informative features and planted label outliers.

    Negatives ~ N(0, I), positives ~ N(mu, I) in ``n_informative`` dimensions with
    ``|mu| = separation`` spread evenly; then :func:`make_pu_split` labels, corrupts and
    appends ``n_noise_features`` pure-noise columns.
    """
    if n_informative < 1:
        raise ValueError(f"n_informative must be >= 1, got {n_informative}")
    rng = np.random.default_rng(seed)
    y = (rng.random(n_samples) < positive_rate).astype(np.int64)
    mu = np.full(n_informative, separation / np.sqrt(n_informative))
    X = rng.standard_normal((n_samples, n_informative)) + y[:, None] * mu
    return make_pu_split(X, y, labeled_fraction=labeled_fraction,
                         outlier_fraction=outlier_fraction, n_noise_features=n_noise_features,
                         unlabeled_ratio=unlabeled_ratio, seed=int(rng.integers(2**31 - 1)))
