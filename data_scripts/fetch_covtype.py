"""Fetch the forest cover-type table (UCI covtype) for the robust-PU chapter at full scale.

    python data_scripts/fetch_covtype.py [--data-home DIR]

scikit-learn's ``fetch_covtype`` downloads ``covtype.data.gz`` and checks its sha256
against the digest pinned in scikit-learn before storing it as joblib pickles under
``DIR/covertype/`` (``DIR`` defaults to ``<book data root>/scikit_learn``, the folder the
chapter reads: ``lib.tabular.pu_data.covtype_home``).
This script then checks the table itself: 581012 rows, 54 features, and the published
count of each of the seven cover types.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EXPECTED_SHAPE = (581012, 54)
EXPECTED_CLASS_COUNTS = {1: 211840, 2: 283301, 3: 35754, 4: 2747, 5: 9493, 6: 17367, 7: 20510}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=None,
                        help="scikit-learn data home (default: <book data root>/scikit_learn)")
    args = parser.parse_args()
    from sklearn.datasets import fetch_covtype

    from lib.tabular.pu_data import covtype_home

    bunch = fetch_covtype(data_home=str(covtype_home(args.data_home)), download_if_missing=True)
    if bunch.data.shape != EXPECTED_SHAPE:
        raise SystemExit(f"covtype has shape {bunch.data.shape}, expected {EXPECTED_SHAPE}")
    classes, counts = np.unique(bunch.target, return_counts=True)
    got = dict(zip(classes.tolist(), counts.tolist(), strict=True))
    if got != EXPECTED_CLASS_COUNTS:
        raise SystemExit(f"covtype class counts {got} differ from {EXPECTED_CLASS_COUNTS}")
    print(f"covtype OK: {bunch.data.shape}, class counts {got}")


if __name__ == "__main__":
    main()
