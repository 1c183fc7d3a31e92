"""The GAN Slimming chapter's dev tuning (prints what ``experiment.TUNING`` records).

GS: (lr_gamma, rho) over six points, seed 0; the criterion is the distance to the teacher
on the *dev* crops at the end of the run (after fine-tuning), among the settings whose
compression ratio is at least ``MIN_RATIO``. Sequential (four runs): its
fine-tuning lr at the MACs of the chosen GS run. Run:
``PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/gan_slimming_tuning.py``.
"""

import json
import time

from lib.core import with_knobs
from lib.papers.gan_slimming import CONFIGS, compress

MIN_RATIO = 8.0
#: the first four points, then two more rho at the lr_gamma that did not collapse
GS_GRID = [(lr, rho) for lr in (0.02, 0.05) for rho in (0.05, 0.15)] + [(0.02, 0.2), (0.02, 0.3)]
SEQ_GRID = (2e-4, 5e-4, 1e-3, 2e-3)


def main() -> None:
    base = CONFIGS["tutorial"]
    gs_rows = []
    for lr, rho in GS_GRID:
        t = time.process_time()
        r = compress(with_knobs(base, lr_gamma=lr, rho=rho), "gs", 0)
        gs_rows.append({"lr_gamma": lr, "rho": rho, "ratio": round(r["ratio"], 2),
                        "dev_distance": round(r["curve"][-1]["dev_distance"], 5),
                        "macs": r["macs"], "cpu_s": round(time.process_time() - t, 1)})
        print(gs_rows[-1], flush=True)
    ok = [g for g in gs_rows if g["ratio"] >= MIN_RATIO] or gs_rows
    best = min(ok, key=lambda g: g["dev_distance"])
    seq_rows = []
    for lr in SEQ_GRID:
        cfg = with_knobs(base, lr_gamma=best["lr_gamma"], rho=best["rho"], seq_lr_w=lr)
        r = compress(cfg, "sequential", 0, target_macs=best["macs"])
        seq_rows.append({"seq_lr_w": lr, "ratio": round(r["ratio"], 2),
                         "dev_distance": round(r["curve"][-1]["dev_distance"], 5)})
        print(seq_rows[-1], flush=True)
    print(json.dumps({"gs": gs_rows, "gs_chosen": best,
                      "sequential": seq_rows,
                      "sequential_chosen": min(seq_rows, key=lambda s: s["dev_distance"])}))


if __name__ == "__main__":
    main()
