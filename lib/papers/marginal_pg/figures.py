"""The marginal_pg chapter's figures (matplotlib), so that its cells stay a call each."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lib.core.plotting import finding_axes, method_color

from .experiment import evaluation_curves, probe_curves

_BASELINE_LABEL = {"none": "reward not centred", "exact": "centred (exact baseline)"}
_DIM_COLOR = {2: "#d62728", 3: "#1f77b4", 5: "#2ca02c"}


def bandit_figure(table: pd.DataFrame) -> plt.Figure:
    """Variance ratio against sigma / |mu|: Monte Carlo with 95% intervals (markers), exact
    theory (lines), the concentrated limits (dotted), one panel per goal direction."""
    goals = sorted(table["goal"].unique())
    fig, axes = plt.subplots(1, len(goals), figsize=(5 * len(goals), 4.2), sharey=True)
    for ax, goal in zip(np.atleast_1d(axes), goals, strict=True):
        part = table[table["goal"] == goal]
        for (d, baseline), g in part.groupby(["d", "baseline"]):
            if goal == 90.0 and baseline == "exact":
                continue  # E[q] = 0 for an orthogonal goal: the same rows as "none"
            color, ls = _DIM_COLOR.get(d, "k"), "-" if baseline == "exact" else "--"
            ax.errorbar(g["sigma"], g["ratio"], yerr=[g["ratio"] - g["lo"], g["hi"] - g["ratio"]],
                        fmt="o", ms=3, color=color, capsize=2)
            ax.plot(g["sigma"], g["exact"], ls, color=color,
                    label=f"d={d}, {_BASELINE_LABEL[baseline]}")
            ax.axhline(g["limit"].iloc[0], color=color, ls=":", lw=0.8)
        ax.set_xscale("log")
        small = part[(part["sigma"] == part["sigma"].min()) & (part["d"] == 2)]
        ratio = small.set_index("baseline")["ratio"]
        finding_axes(ax, title=f"goal {goal:.0f} deg from the mean; d=2, smallest sigma:\n"
                     f"not centred {ratio['none']:.2f}, centred {ratio['exact']:.2f}",
                     xlabel="sigma / |mu| (log scale)",
                     ylabel="Var(marginal) / Var(standard)", legend=False)
    axes = np.atleast_1d(axes)
    axes[-1].legend(*axes[0].get_legend_handles_labels(), loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def capg_figure(table: pd.DataFrame) -> plt.Figure:
    """CAPG's variance ratio over the policy mean, with and without the baseline."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for baseline, g in table.groupby("baseline"):
        ls = "-" if baseline == "exact" else "--"
        ax.errorbar(g["loc"], g["ratio"], yerr=[g["ratio"] - g["lo"], g["hi"] - g["ratio"]],
                    fmt="o", ms=3, color=method_color("CAPG"), capsize=2)
        ax.plot(g["loc"], g["exact"], ls, color=method_color("CAPG"),
                label=f"CAPG / standard, {_BASELINE_LABEL[baseline]}")
    g = table[table["baseline"] == "none"]
    ax.plot(g["loc"], g["clipped_fraction"], "s:", color="gray", label="fraction clipped")
    best = table.loc[table.groupby("baseline")["ratio"].idxmin()].set_index("baseline")["ratio"]
    finding_axes(ax, title=f"CAPG: lowest ratio {best['none']:.2f} without a baseline, "
                 f"{best['exact']:.2f} centred", xlabel="policy mean mu (action box [-1, 1])",
                 ylabel="variance ratio / fraction")
    fig.tight_layout()
    return fig


def returns_figure(platform: dict[str, Any], max_return: float) -> plt.Figure:
    """Evaluation return along training, mean over seeds with the seeds' range, per optimizer."""
    fig, axes = plt.subplots(1, len(platform), figsize=(6.5 * len(platform), 4.2), sharey=True)
    for ax, (optimizer, res) in zip(np.atleast_1d(axes), platform.items(), strict=True):
        curves = evaluation_curves(res["runs"])
        for method, g in curves.groupby("method", sort=False):
            by = g.groupby("update")["return"]
            x = by.mean().index
            ax.plot(x, by.mean(), "o-", ms=3, color=method_color(method),
                    label=f"{method} (lr {res['tuning']['lr'][method]:g})")
            ax.fill_between(x, by.min(), by.max(), color=method_color(method), alpha=0.12)
        ax.axhline(max_return, color="k", ls=":", lw=1, label="maximum return")
        last = curves[curves["update"] == curves["update"].max()]
        final = last.groupby("method", sort=False)["return"].mean()
        finding_axes(ax, title=f"{optimizer.upper()}, final return:\n" + ", ".join(
            f"{m} {v:.2f}" for m, v in final.items()), xlabel="A2C updates",
            ylabel="evaluation return (distance gained)")
    fig.tight_layout()
    return fig


def probe_figure(platform: dict[str, Any]) -> plt.Figure:
    """The probe's variance ratio along training, critic's and centred advantages."""
    fig, axes = plt.subplots(1, len(platform), figsize=(6.5 * len(platform), 4), sharey=True)
    for ax, (optimizer, res) in zip(np.atleast_1d(axes), platform.items(), strict=True):
        curves = probe_curves(res["runs"])
        for adv, ls in (("critic", "--"), ("centred", "-")):
            by = curves.groupby("env_steps")[adv]
            x = by.mean().index / 1e3
            ax.plot(x, by.mean(), ls, marker="o", ms=3, color=method_color("APG"),
                    label=f"{adv} advantages (mean over runs)")
            ax.fill_between(x, by.min(), by.max(), color=method_color("APG"), alpha=0.12)
        ax.axhline(0.5, color="k", ls=":", lw=1, label="paper: about 1/2")
        ax.axhline(5 / 6, color="gray", ls=":", lw=1, label="5/6 (centred, policy on target)")
        late = curves[curves.env_steps > 0]
        finding_axes(ax, title=f"{optimizer.upper()}: after init, critic's advantages "
                     f"{late['critic'].mean():.2f}, centred {late['centred'].mean():.2f}",
                     xlabel="environment steps of the run probed (thousands)",
                     ylabel="Var(APG) / Var(standard)")
    fig.tight_layout()
    return fig
