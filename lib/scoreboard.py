"""The scoreboard: each paper's reported claim beside the latest metrics record of its chapter.

A ``Claim`` names a chapter, what the paper reports, and two small functions of that
chapter's record metrics: what we measured (as text) and whether the paper's claim holds
in our run (``True``/``False``, or ``None`` when it cannot be judged at this scale).
Records come from ``results/<chapter>-<scale>.json``, written by the latest run of each
chapter (``python -m lib.reproduce`` or the book build).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.core import paths
from lib.core.record import read_record, record_path

Metrics = dict[str, Any]


@dataclass(frozen=True)
class Claim:
    chapter: str
    claim: str
    paper: str
    ours: Callable[[Metrics], str]
    holds: Callable[[Metrics], bool | None]


def _largest(metrics: Metrics, pattern: str) -> tuple[float, str] | None:
    """The metric matching ``pattern`` (one numeric group) with the largest number."""
    found = [(float(m.group(1)), k) for k in metrics if (m := re.fullmatch(pattern, k))]
    return max(found) if found else None


def _prune_quant_ours(m: Metrics) -> str:
    top = _largest(m, r"acc_joint_(\d+)x")
    budget = int(top[0])
    ptq = m.get(f"acc_prune-then-quantize_{budget}x")
    return (f"joint at {m[f'ratio_joint_{budget}x']:.0f}x: {m[top[1]]:.1%} "
            f"(dense {m['dense_accuracy']:.1%}; prune-then-quantize {ptq:.1%})")


def _prune_quant_holds(m: Metrics) -> bool:
    budget = int(_largest(m, r"acc_joint_(\d+)x")[0])
    return m[f"acc_joint_{budget}x"] >= m[f"acc_prune-then-quantize_{budget}x"]


def _dltf_recovery(m: Metrics) -> tuple[int, float, float]:
    k = int(_largest(m, r"dltf_recovery_k(\d+)")[0])
    return k, m[f"dltf_recovery_k{k}"], m[f"mbdl_recovery_k{k}"]


def _mpg_returns(m: Metrics) -> dict[str, float]:
    return {name: m[f"final_return_{name}_mean"] for name in ("APG", "Gaussian", "angle")}


def _pu_outliers(m: Metrics) -> list[tuple[str, float, float]]:
    rows = []
    for dataset in sorted({k.split("_outlier_fraction_")[0][4:] for k in m
                           if "_outlier_fraction_" in k}):
        top = _largest(m, rf"auc_{dataset}_outlier_fraction_([\d.]+)_robust_auc")
        frac = top[1].split("_outlier_fraction_")[1].split("_")[0]
        rows.append((f"{dataset} @ {frac}", m[top[1]],
                     m[f"auc_{dataset}_outlier_fraction_{frac}_plain_auc"]))
    return rows


def _omni_gains(m: Metrics) -> dict[int, float]:
    return {int(k.removeprefix("relative_gain_")): v for k, v in m.items()
            if k.startswith("relative_gain_") and k != "relative_gain_0"}


def _omni_ours(m: Metrics) -> str:
    return ", ".join(f"{s}%: {g:+.1%}" for s, g in sorted(_omni_gains(m).items()))


def _noisy_sets(m: Metrics) -> list[tuple[str, str]]:
    """(role, the paper's set) of the noisy-training record: unseen ~ test-clean,
    unseen + noise ~ test-other."""
    return [(r, name) for r, name in (("unseen_noisy", "test-other"), ("unseen", "test-clean"))
            if f"rel_improvement_sparse_{r}" in m]


_FLATNESS_WORDS = {1: "flatter", 0: "no change beyond the seed spread", -1: "sharper"}


def _noisy_holds(m: Metrics) -> bool:
    sets = _noisy_sets(m)
    return bool(sets) and all(m[f"rel_improvement_sparse_{r}"] > 0
                              and m[f"seeds_better_sparse_{r}"] == m["n_seeds"]
                              for r, _ in sets)


CLAIMS: list[Claim] = [
    Claim("prune_quant", "Joint sparsity-quantization under a bit budget beats compressing "
          "step by step; no accuracy loss at large ratios",
          "836x ResNet-50 CIFAR-10, 205x AlexNet ImageNet, no accuracy loss",
          _prune_quant_ours, _prune_quant_holds),
    Claim("dltf", "The (k,2)-norm prox costs O(m log m)", "O(m log m) (log-linear)",
          lambda m: f"fitted exponent {m['prox_exponent_numpy']:.2f}; "
                    f"{m['prox_speedup_vs_generic']:.0f}x faster than a generic solver "
                    f"at m={m['prox_speedup_at_m']}",
          lambda m: m["prox_exponent_numpy"] < 1.3),
    Claim("dltf", "A dictionary learned for thresholded features recovers supports better "
          "than a standard learned dictionary", "qualitative (synthetic recovery experiments)",
          lambda m: "recovery at k={}: DLTF {:.0%}, MiniBatchDL {:.0%}".format(*_dltf_recovery(m)),
          lambda m: _dltf_recovery(m)[1] > _dltf_recovery(m)[2]),
    Claim("marginal_pg", "Marginal / standard gradient variance on a directional bandit "
          "(small sigma)", "(d-1)/d: 0.50, 0.67, 0.80 for d = 2, 3, 5",
          lambda m: ", ".join(f"{m[f'bandit_ratio_d{d}']:.2f}" for d in (2, 3, 5)),
          lambda m: all(abs(m[f"bandit_ratio_d{d}"] - (d - 1) / d) < 0.05 for d in (2, 3, 5))),
    Claim("marginal_pg", "APG gradient variance relative to the Gaussian's on Platform2D",
          "about 1/2", lambda m: f"median {m['platform_variance_ratio_median']:.2f}",
          lambda m: 0.3 <= m["platform_variance_ratio_median"] <= 0.7),
    Claim("marginal_pg", "Only APG reaches the maximum return on Platform2D",
          "APG best; Gaussian and angle policies fall short",
          lambda m: ", ".join(f"{k} {v:.2f}" for k, v in _mpg_returns(m).items()),
          lambda m: max(_mpg_returns(m), key=_mpg_returns(m).get) == "APG"),
    Claim("omni_sparsity", "Omni-sparsity sub-networks match or beat individually pruned "
          "models at most sparsities", "2%-6.6% relative lower WER (LibriSpeech test-other)",
          lambda m: "relative WER gain " + _omni_ours(m),
          lambda m: 2 * sum(g >= 0 for g in _omni_gains(m).values()) > len(_omni_gains(m))),
    Claim("omni_sparsity", "Training the supernet costs about one model's training",
          "no more GPU-hours than one model",
          lambda m: f"{m['supernet_vs_one_pruned_wall']:.1f}x the wall time of one pruned model "
                    f"({m['supernet_passes']:.0f} vs {m['pruned_passes'] / m['pruned_models']:.0f}"
                    " forward/backward passes)",
          lambda m: m["supernet_vs_one_pruned_wall"] <= 1.5),
    Claim("omni_sparsity", "A search picks per-layer sparsities for a size budget without "
          "retraining", "qualitative (evolutionary search on the supernet)",
          lambda m: f"searched {m['search_test_wer']:.1%} vs uniform {m['uniform_test_wer']:.1%} "
                    f"WER at <= {m['search_budget_params']:.0f} parameters",
          lambda m: m["search_params"] <= m["search_budget_params"]
          and m["search_test_wer"] <= m["uniform_test_wer"]),
    Claim("robust_pu", "Robust AUC learning resists mislabeled positives better than plain "
          "AUC maximization", "qualitative (synthetic and clinical data)",
          lambda m: "; ".join(f"{d}: robust {r:.3f} vs plain {p:.3f}"
                              for d, r, p in _pu_outliers(m)),
          lambda m: all(r >= p for _, r, p in _pu_outliers(m))),
    Claim("robust_pu", "Unlabeled samples suffice once about as many as the positives",
          "n_u / n+ about 1", lambda m: "; ".join(
              f"{k.removeprefix('saturation_ratio_')}: saturates at n_u/n+ = {v}"
              for k, v in m.items() if k.startswith("saturation_ratio_")),
          lambda m: all(v <= 1.0 for k, v in m.items() if k.startswith("saturation_ratio_"))),
    Claim("noisy_training", "Weight noise during training lowers the WER of 90%-sparse "
          "Emformer RNN-T on unseen data", "12% (test-other), 14% (test-clean) relative",
          lambda m: "; ".join(f"{name} analogue {100 * m[f'rel_improvement_sparse_{r}']:+.1f}% "
                              f"({m[f'seeds_better_sparse_{r}']}/{m['n_seeds']} seeds better)"
                              for r, name in _noisy_sets(m)),
          _noisy_holds),
    Claim("noisy_training", "Noisy training gives smoother (flatter) models",
          "qualitative", lambda m: "; ".join(
              f"{k}: {_FLATNESS_WORDS[m[f'flatness_effect_{k}']]}" for k in ("dense", "sparse")),
          lambda m: all(m[f"flatness_effect_{k}"] == 1 for k in ("dense", "sparse"))),
]


def scoreboard_rows(scale: str, results: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per claim: the paper's number, ours from the latest record, whether it holds."""
    rows = []
    for claim in CLAIMS:
        path = record_path(claim.chapter, scale, results or paths.results_dir())
        row = {"chapter": claim.chapter, "claim": claim.claim, "paper": claim.paper,
               "ours": "not run at this scale yet", "holds here": None, "record": ""}
        if path.exists():
            record = read_record(path)
            try:
                row["ours"] = claim.ours(record["metrics"])
                row["holds here"] = claim.holds(record["metrics"])
            except (KeyError, TypeError, ValueError) as err:
                row["ours"] = f"record lacks the metric ({type(err).__name__}: {err})"
            row["record"] = f"{record['git_commit'][:10]} {record.get('created', '')[:10]}"
        rows.append(row)
    return rows
