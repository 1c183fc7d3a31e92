"""The GAN Slimming chapter's dev tuning (prints what ``experiment.TUNING`` records).

Equal effort: five grid points for GS (its l1 weight ``rho``; ``lr_gamma`` fixed) and five for
the sequential baseline (its fine-tuning lr), seed 0, the tutorial config otherwise. Each point
runs at every budget of the sweep (``cfg.ratios``) and is scored by its mean distance to the
teacher on the *dev* crops at the end of training (after fine-tuning); the lowest wins. Run:
``PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/gan_slimming_tuning.py``.
"""

import json
import time

import numpy as np

from lib.core import with_knobs
from lib.papers.gan_slimming import CONFIGS, compress_sweep

GS_GRID = (0.05, 0.1, 0.2, 0.3, 0.4)             # rho
SEQ_GRID = (5e-4, 1e-3, 2e-3, 4e-3, 8e-3)        # seq_lr_w


def _score(runs) -> dict:
    return {"ratios": [round(r["ratio"], 2) for r in runs],
            "dev_distance": round(float(np.mean([r["curve"][-1]["dev_distance"]
                                                 for r in runs])), 5)}


def main() -> None:
    base = CONFIGS["tutorial"]
    rows = {"gs": [], "sequential": []}
    for method, knob, grid in (("gs", "rho", GS_GRID), ("sequential", "seq_lr_w", SEQ_GRID)):
        for v in grid:
            t = time.process_time()
            runs = compress_sweep(with_knobs(base, **{knob: v}), method, 0, base.ratios)
            rows[method].append({knob: v, **_score(runs),
                                 "cpu_s": round(time.process_time() - t, 1)})
            print(method, rows[method][-1], flush=True)
    chosen = {m: min(r, key=lambda g: g["dev_distance"]) for m, r in rows.items()}
    print(json.dumps({"gs": rows["gs"], "gs_chosen": {"rho": chosen["gs"]["rho"]},
                      "sequential": rows["sequential"],
                      "sequential_chosen": {"seq_lr_w": chosen["sequential"]["seq_lr_w"]}}))


if __name__ == "__main__":
    main()
