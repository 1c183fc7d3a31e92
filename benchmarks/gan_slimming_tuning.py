"""The GAN Slimming chapter's dev tuning (prints what ``experiment.TUNING`` records).

Equal effort: seven grid points for GS (its l1 weight ``rho``; ``lr_gamma`` fixed) and seven
for the sequential baseline (its fine-tuning lr), seed 0, the tutorial config otherwise (each
grid was first five points; GS's best lay at its edge, so both got two more: GS beyond
the edge, the sequential baseline beside its best). Each
point runs at every budget of the sweep (``cfg.ratios``) and is scored by its mean distance to
the teacher on the *dev* crops at the end of training (after fine-tuning); the lowest wins
among the points whose ratios are within ``MAX_GAP`` of every budget (a GS whose l1 term
alone overshoots a budget is not at a matched ratio). Run (optionally ``gs:0.6,0.8`` to run
some points only):
``PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/gan_slimming_tuning.py``.
"""

import json
import sys
import time

import numpy as np

from lib.core import with_knobs
from lib.papers.gan_slimming import CONFIGS, compress_sweep

GS_GRID = (0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8)              # rho
SEQ_GRID = (5e-4, 1e-3, 1.5e-3, 2e-3, 3e-3, 4e-3, 8e-3)      # seq_lr_w
MAX_GAP = 0.1


def _score(runs) -> dict:
    gap = max(r["ratio"] / r["target_ratio"] - 1 for r in runs)
    return {"ratios": [round(r["ratio"], 2) for r in runs], "max_gap": round(gap, 3),
            "dev_distance": round(float(np.mean([r["curve"][-1]["dev_distance"]
                                                 for r in runs])), 5)}


def main() -> None:
    base = CONFIGS["tutorial"]
    rows = {"gs": [], "sequential": []}
    only = dict(a.split(":") for a in sys.argv[1:])
    for method, knob, grid in (("gs", "rho", GS_GRID), ("sequential", "seq_lr_w", SEQ_GRID)):
        if only:
            grid = [float(v) for v in only.get(method, "").split(",") if v]
        for v in grid:
            t = time.process_time()
            runs = compress_sweep(with_knobs(base, **{knob: v}), method, 0, base.ratios)
            rows[method].append({knob: v, **_score(runs),
                                 "cpu_s": round(time.process_time() - t, 1)})
            print(method, rows[method][-1], flush=True)
    chosen = {m: min([g for g in r if g["max_gap"] <= MAX_GAP] or r,
                     key=lambda g: g["dev_distance"]) if r else {"rho": None, "seq_lr_w": None}
              for m, r in rows.items()}
    print(json.dumps({"gs": rows["gs"], "gs_chosen": {"rho": chosen["gs"]["rho"]},
                      "sequential": rows["sequential"],
                      "sequential_chosen": {"seq_lr_w": chosen["sequential"]["seq_lr_w"]}}))


if __name__ == "__main__":
    main()
