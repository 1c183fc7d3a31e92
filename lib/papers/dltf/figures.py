"""The DLTF chapter's tables and figures, computed from ``run``'s results (matplotlib; each
title states the finding)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lib.core.plotting import finding_axes, method_color
from lib.vision import patches as vpatches

from .experiment import fitted_slope, relative_reconstruction_error
from .method import k2_coherence
from .planted import COMPARISONS, PLANTED_METHODS


def timing_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds per method and m, the fitted slopes (past the per-call overhead, m >= 1000
    where three sizes allow), the slope an m log m law has there, and the speedup at the
    largest m both solvers ran."""
    timing = pd.DataFrame(rows)
    times = timing.pivot(index="m", columns="method", values="seconds")
    fit_from = 1000 if (times.index >= 1000).sum() >= 3 else int(times.index.min())
    slopes, ranges = {}, {}
    for method in times.columns:
        col = times[method].dropna()
        col = col[col.index >= fit_from] if (col.index >= fit_from).sum() >= 2 else col
        slopes[method], ranges[method] = fitted_slope(col.index, col), col.index
    ours = ranges["prox (numpy, ours)"]
    common = int(times["generic SOCP solver"].dropna().index.max())
    return {"table": timing, "times": times, "slopes": slopes, "fit_from": fit_from,
            "ours_range": (int(ours.min()), int(ours.max())),
            "mlogm_slope": fitted_slope(ours, ours * np.log(ours)), "common_m": common,
            "speedup": float(times.loc[common, "generic SOCP solver"]
                             / times.loc[common, "prox (numpy, ours)"]),
            "max_gap": float(timing["objective gap vs ours"].abs().max())}


def plot_timing(summary: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for method, col in summary["times"].items():
        col = col.dropna()
        ax.loglog(col.index, col, "o-", color=method_color(method),
                  label=f"{method}: slope {summary['slopes'][method]:.2f} "
                        f"(fit m >= {summary['fit_from']:,})")
    finding_axes(ax, title=f"The exact prox is {summary['speedup']:.0f}x faster than a generic "
                           f"solver at m = {summary['common_m']:,}",
                 xlabel="vector length m", ylabel="seconds per prox (log scale)")
    return fig


def dictionary_table(cfg, learned: dict[str, Any], X) -> pd.DataFrame:
    """Coherences, reconstruction error and training time of each patch dictionary."""
    return pd.DataFrame([
        {"dictionary": name, "mu_1 (mutual coherence)": k2_coherence(D, 1),
         f"mu_{cfg.dltf_k}": k2_coherence(D, cfg.dltf_k),
         f"relative reconstruction error at lambda={cfg.dltf_lambda}":
             relative_reconstruction_error(D, X, cfg.dltf_lambda),
         "training seconds": learned["seconds"].get(name, 0.0)}
        for name, D in learned["dictionaries"].items()]).set_index("dictionary")


def plot_coherence(cfg, learned: dict[str, Any]):
    import matplotlib.pyplot as plt

    dicts = learned["dictionaries"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1.1, 1, 1]})
    for name, hist in learned["history"].items():
        axes[0].plot([h["step"] for h in hist], [h["mu_k"] for h in hist],
                     color=method_color(name), label=name)
    mu_mbdl = k2_coherence(dicts["MBDL (scikit-learn)"], cfg.dltf_k)
    axes[0].axhline(mu_mbdl, color=method_color("MBDL (scikit-learn)"), ls="--",
                    label="MBDL (final)")
    ratio = mu_mbdl / k2_coherence(dicts["DLTF"], cfg.dltf_k)
    finding_axes(axes[0], title=f"DLTF's coherence ends {ratio:.1f}x below MBDL's",
                 xlabel="training step", ylabel=f"(k,2)-coherence mu_{cfg.dltf_k}")
    for ax, name in zip(axes[1:], ["MBDL (scikit-learn)", "DLTF"], strict=True):
        ax.imshow(vpatches.tile_atoms(dicts[name].numpy(), cfg.patch_size), cmap="gray")
        ax.set_title(f"{name} atoms")
        ax.axis("off")
    fig.tight_layout()
    return fig


def largest_k(recovery: pd.DataFrame, name: str, column: str, level: float = 0.9) -> int:
    rows = recovery[(recovery.dictionary == name) & (recovery[column] >= level)]
    return int(rows.k.max()) if len(rows) else 0


def plot_self_recovery(recovery: pd.DataFrame):
    """Recovery of codes of each dictionary's own signals, with the two conditions."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name in recovery.dictionary.unique():
        r, c = recovery[recovery.dictionary == name], method_color(name)
        ax.plot(r.k, r.measured, "o-", color=c, label=name)
        ax.plot(r.k, r["condition (k,2)"], "s--", color=c, alpha=0.8)
        ax.plot(r.k, r["condition mutual"], ":", color=c, alpha=0.6)
    for style, label in (("o-", "measured (some lambda recovers)"),
                         ("s--", "condition (R) holds"), (":", "mutual-coherence condition")):
        ax.plot([], [], style, color="k", label=label)
    best = max(recovery.dictionary.unique(), key=lambda n: largest_k(recovery, n, "measured"))
    finding_axes(ax, title=f"On its own signals {best} recovers >= 90% up to "
                           f"k = {largest_k(recovery, best, 'measured')}: a test of coherence",
                 xlabel="sparsity k (nonzeros per code)",
                 ylabel="fraction of codes (exact support)")
    ax.legend(fontsize=8, ncol=2)
    return fig


def planted_table(planted: dict[str, Any]) -> pd.DataFrame:
    """Mean recovery of each dictionary per (k, noise) cell, and DLTF's paired differences."""
    rows = []
    for row in planted["rows"]:
        out = {"k": row["k"], "noise": row["noise"]}
        out |= {m: row[m] for m in PLANTED_METHODS}
        out |= {name: str(row[name]) for name in (f"{a} - {b}" for a, b in COMPARISONS[:3])}
        out |= {"DLTF lambda": row["DLTF lambda"], "MBDL alpha": row["MBDL alpha"]}
        rows.append(out)
    return pd.DataFrame(rows).set_index(["k", "noise"])


def plot_planted(planted: dict[str, Any]):
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(planted["rows"])
    noises = sorted(frame.noise.unique())
    fig, axes = plt.subplots(1, len(noises), figsize=(6 * len(noises), 4), squeeze=False)
    for ax, noise in zip(axes[0], noises, strict=True):
        r = frame[frame.noise == noise]
        for m in PLANTED_METHODS:
            if m == PLANTED_METHODS[0]:
                ax.plot(r.k, r[m], "k--", label=m)
            else:
                ax.plot(r.k, r[m], "o-", color=method_color(m), label=m)
        ax.set_title(f"noise std {noise:g}")
    iv = planted["intervals"]["DLTF - MBDL (scikit-learn)"]
    finding_axes(axes[0][0], title=f"Planted D*: DLTF - MBDL recovery {100 * iv.estimate:+.1f} "
                                   f"points [{100 * iv.lo:+.1f}, {100 * iv.hi:+.1f}]",
                 xlabel="sparsity k of the planted codes",
                 ylabel="fraction of new signals (exact support)")
    for ax in axes[0][1:]:
        finding_axes(ax, title=ax.get_title(), xlabel="sparsity k of the planted codes",
                     ylabel="fraction recovered", legend=False)
    fig.tight_layout()
    return fig


def plot_digits(digits: list[dict[str, Any]]):
    """Seed 0's test accuracy against lambda and against the feature density."""
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(digits)
    raw = float(frame[frame.dictionary == "raw pixels"].accuracy.iloc[0])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for name in frame.dictionary.unique():
        if name == "raw pixels":
            continue
        r = frame[frame.dictionary == name]
        axes[0].plot(r["lambda"], r.accuracy, "o-", color=method_color(name), label=name)
        axes[1].plot(r["nonzero fraction"], r.accuracy, "o-", color=method_color(name),
                     label=name)
    for ax in axes:
        ax.axhline(raw, color="k", ls=":", label="raw pixels")
    finding_axes(axes[0], title="Sparser features (larger lambda) cost accuracy (seed 0)",
                 xlabel="threshold lambda (signal units)", ylabel="test accuracy")
    finding_axes(axes[1], title="Accuracy against feature sparsity", ylabel="test accuracy",
                 xlabel="fraction of nonzero features")
    fig.tight_layout()
    return fig


def plot_denoising(den: dict[str, Any]):
    import matplotlib.pyplot as plt

    clean, noisy = den["images"]["test"]
    best = den["best"]
    top = max(best, key=lambda n: best[n]["test PSNR"])
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.6))
    shown = [("clean", clean), (f"noisy: {den['noisy PSNR']['test']:.2f} dB", noisy)] + [
        (f"{n}: {best[n]['test PSNR']:.2f} dB", best[n]["denoised"])
        for n in ("MBDL (scikit-learn)", "DLTF (gamma=0)", "DLTF")]
    for ax, (label, img) in zip(axes, shown, strict=True):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"Denoising with thresholded features (seed 0): best test PSNR "
                 f"{best[top]['test PSNR']:.2f} dB by {top}")
    fig.tight_layout()
    return fig


def interval_table(intervals: dict[str, Any], percent: bool) -> pd.DataFrame:
    """One row per paired comparison: estimate, 95% interval, seeds and items."""
    scale = 100.0 if percent else 1.0
    return pd.DataFrame([{"comparison": name, "difference": scale * iv.estimate,
                          "95% low": scale * iv.lo, "95% high": scale * iv.hi,
                          "seeds": iv.n_seeds, "items per seed": iv.n_items}
                         for name, iv in intervals.items()]).set_index("comparison")


def summary_markdown(results: dict[str, Any], timing: dict[str, Any]) -> str:
    """The chapter's "what we see" sentences, computed from this run's numbers."""
    from .experiment import verdict_table

    planted, seeded = results["planted"], results["seeded"]
    iv = planted["intervals"]
    pooled = {m: float(v.mean()) for m, v in planted["pooled"].items()}
    verdicts = {row["id"]: row["verdict"] for row in verdict_table(results["metrics"])}
    psnr = {r["dictionary"]: r.get("test PSNR (dB)") for r in seeded["rows"]}
    acc = {r["dictionary"]: r["digits accuracy"] for r in seeded["rows"]}
    lo, hi = timing["ours_range"]
    lines = [
        f"- **Prox.** The generic solver's objective is never below ours by more than "
        f"{timing['max_gap']:.1e}. Our time grows with exponent "
        f"{timing['slopes']['prox (numpy, ours)']:.2f} for m = {lo:,} .. {hi:,} (an m log m "
        f"law: {timing['mlogm_slope']:.2f}), the generic solver's with "
        f"{timing['slopes']['generic SOCP solver']:.2f}; it is {timing['speedup']:.0f}x slower "
        f"at m = {timing['common_m']:,}.",
        "- **Planted recovery** (mean over the grid): "
        + ", ".join(f"{m} {100 * v:.1f}%" for m, v in pooled.items()) + ". "
        + "; ".join(f"{name} {100 * x.estimate:+.1f} points [{100 * x.lo:+.1f}, {100 * x.hi:+.1f}]"
                    for name, x in iv.items()) + ".",
        "- **Digits** (mean test accuracy over seeds, lambda chosen on validation): "
        + ", ".join(f"{n} {a:.3f}" for n, a in acc.items()) + ".",
        f"- **Denoising** (mean test PSNR over seeds; noisy {seeded['noisy PSNR (dB)']:.2f} dB): "
        + ", ".join(f"{n} {p:.2f} dB" for n, p in psnr.items() if p is not None) + ".",
        "- **Verdicts:** " + "; ".join(f"{c}: {v}" for c, v in verdicts.items()) + ".",
    ]
    return "\n".join(lines)
