"""The marginal_pg chapter's experiments: bandits, Platform2D, classic control, tables, claims.

1. **One-step bandits** (Monte Carlo against the exact theory of ``theory.py``): the
   variance ratio of the marginal and the standard estimator, with the reward *not centred*
   and *centred* by the exact baseline ``E[q]``, over ``sigma / |mu|`` and ``d``, for a goal at
   60 degrees from the mean, one orthogonal to it and one along it; CAPG over the policy
   mean.
2. **Platform2D with A2C**: APG, the same Gaussian policy with the standard estimator, a 1-D
   Gaussian on the angle, and a positive control (the standard estimator on 1.5x the samples
   per update: a variance reduction of 2/3 by construction, the ratio the centred bandit
   predicts at d = 2). Learning rates are tuned per method and optimizer on development seeds
   (the grid is in the config); returns are compared on other seeds, paired over seeds and
   evaluation episodes (common random numbers). The gradient variance of both estimators is
   probed along training, with the critic's advantages and with advantages centred per state.
3. **Full scale only**: CAPG against the standard estimator on a gymnasium classic-control
   task with clipped actions.

The configs are in ``config.py`` (re-exported here), the cached A2C runs in ``training.py``.
The paper's King of Glory experiment runs on a proprietary game and cannot be reproduced.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from lib.core import ArtifactCache, derive_seed, limit_steps, make_generator
from lib.core.claims import Claim, verdict_rows
from lib.core.stats import Interval, bootstrap_interval, paired_bootstrap

from . import theory
from .config import (
    ALL_PLATFORM_METHODS,
    CHAPTER,
    CONFIGS,
    DEV_SEED_OFFSET,
    POSITIVE_CONTROL,
    MarginalPGConfig,
    lr_grid,
)
from .method import CONTROL_METHODS, PLATFORM_METHODS, clipped_estimators, directional_estimators
from .training import control_run, platform_geometry, platform_run

__all__ = ["ALL_PLATFORM_METHODS", "CLAIMS", "CONFIGS", "POSITIVE_CONTROL", "MarginalPGConfig",
           "claim_metrics", "run", "run_bandits", "run_control", "run_platform", "verdict_table"]


# --------------------------------------------------------------------------------------------
# Experiment 1: one-step bandits, Monte Carlo beside the exact theory
# --------------------------------------------------------------------------------------------

def bandit_samples(cfg: MarginalPGConfig) -> int:
    """Monte Carlo samples per seed and case; a dry run's step limit caps the samples per
    item (the bootstrap's unit), so the full grid runs in seconds."""
    return limit_steps(cfg.bandit_samples // cfg.bandit_items) * cfg.bandit_items


def _grouped(x: torch.Tensor, items: int) -> np.ndarray:
    """Sums over ``items`` equal groups of consecutive samples (the bootstrap's units)."""
    n = x.shape[0] - x.shape[0] % items
    return x[:n].reshape(items, -1).sum(1).numpy()


def _interval_row(standard: list[np.ndarray], marginal: list[np.ndarray]) -> dict[str, float]:
    """The ratio of summed squared deviations, marginal over standard, over seeds x items."""
    iv = bootstrap_interval(np.stack(marginal), denominators=np.stack(standard))
    return {"ratio": iv.estimate, "lo": iv.lo, "hi": iv.hi}


def _z_max(estimates: list[torch.Tensor], truth: np.ndarray) -> float:
    """Largest |z| of an estimator's pooled mean against the exact gradient."""
    g = torch.cat(estimates)
    se = (g.var(0) / len(g)).sqrt().numpy()
    diff = np.abs(g.mean(0).numpy() - truth)
    return float(np.max(diff / np.maximum(se, 1e-300)))


def directional_case(cfg: MarginalPGConfig, d: int, sigma: float, goal_deg: float,
                     seed: int = 0) -> list[dict[str, Any]]:
    """Both baselines of one bandit case: Monte Carlo ratio with its interval, exact ratio,
    concentrated limit, and both estimators' bias against the exact gradient (|z|)."""
    beta = math.radians(goal_deg)
    exact = {b: theory.directional_moments(d, sigma, beta, b) for b in theory.BASELINES}
    loc = torch.zeros(d, dtype=torch.float64)
    loc[0] = 1.0
    goal = torch.zeros(d, dtype=torch.float64)
    goal[0], goal[1] = math.cos(beta), math.sin(beta)
    acc = {b: {"s": [], "m": [], "gs": [], "gm": []} for b in theory.BASELINES}
    for s in range(cfg.bandit_seeds):
        gen = make_generator(derive_seed(seed, "directional", d, sigma, goal_deg, s))
        a = loc + sigma * torch.randn(bandit_samples(cfg), d, generator=gen, dtype=torch.float64)
        q = (a / a.norm(dim=-1, keepdim=True) * goal).sum(-1)
        for b in theory.BASELINES:
            base = exact[b]["mean_reward"] if b == "exact" else 0.0
            g_s, g_m = directional_estimators(a, loc, sigma, q - base)
            for key, g in (("s", g_s), ("m", g_m)):
                acc[b][key].append(_grouped((g - g.mean(0)).pow(2).sum(-1), cfg.bandit_items))
            acc[b]["gs"].append(g_s)
            acc[b]["gm"].append(g_m)
    rows = []
    for b in theory.BASELINES:
        truth = np.zeros(d)  # G lies in the plane of mu and the goal (theory.py)
        truth[:2] = exact[b]["gradient"]
        rows.append({"d": d, "sigma": sigma, "goal": goal_deg, "baseline": b,
                     **_interval_row(acc[b]["s"], acc[b]["m"]), "exact": exact[b]["ratio"],
                     "limit": theory.concentrated_ratio(d, goal_deg, b == "exact"),
                     "z_standard": _z_max(acc[b]["gs"], truth),
                     "z_marginal": _z_max(acc[b]["gm"], truth)})
    return rows


def clipped_case(cfg: MarginalPGConfig, loc: float, seed: int = 0, low: float = -1.0,
                 high: float = 1.0, target: float = 0.8) -> list[dict[str, Any]]:
    """CAPG against the standard estimator at one policy mean, both baselines."""
    exact = {b: theory.clipped_moments(loc, cfg.clip_sigma, low, high, target, b)
             for b in theory.BASELINES}
    acc = {b: {"s": [], "m": [], "gs": [], "gm": []} for b in theory.BASELINES}
    for s in range(cfg.bandit_seeds):
        gen = make_generator(derive_seed(seed, "clipped", loc, cfg.clip_sigma, s))
        a = loc + cfg.clip_sigma * torch.randn(bandit_samples(cfg), 1, generator=gen,
                                               dtype=torch.float64)
        q = -(a.clamp(low, high) - target) ** 2
        for b in theory.BASELINES:
            base = exact[b]["mean_reward"] if b == "exact" else 0.0
            g_s, g_m = clipped_estimators(a, loc, cfg.clip_sigma, low, high, q - base)
            for key, g in (("s", g_s), ("m", g_m)):
                acc[b][key].append(_grouped((g - g.mean(0)).pow(2).sum(-1), cfg.bandit_items))
            acc[b]["gs"].append(g_s)
            acc[b]["gm"].append(g_m)
    return [{"loc": loc, "baseline": b, "clipped_fraction": exact[b]["clipped_fraction"],
             **_interval_row(acc[b]["s"], acc[b]["m"]), "exact": exact[b]["ratio"],
             "z_standard": _z_max(acc[b]["gs"], np.array([exact[b]["gradient"]])),
             "z_marginal": _z_max(acc[b]["gm"], np.array([exact[b]["gradient"]]))}
            for b in theory.BASELINES]


def run_bandits(cfg: MarginalPGConfig, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Experiment 1 over the config's grid: one row per case and baseline."""
    directional = [row for d in cfg.bandit_dims for s in cfg.bandit_sigmas
                   for g in cfg.goal_angles for row in directional_case(cfg, d, s, g, seed)]
    clipped = [row for m in cfg.clip_locs for row in clipped_case(cfg, m, seed)]
    return {"directional": pd.DataFrame(directional), "clipped": pd.DataFrame(clipped)}


def bandit_table(directional: pd.DataFrame, goal: float) -> pd.DataFrame:
    """One goal's cases side by side, per baseline: the Monte Carlo ratio with its 95%
    interval, the exact ratio and the concentrated limit, indexed by d and sigma / |mu|."""
    part = directional[directional["goal"] == goal]
    out = []
    for (d, sigma), g in part.groupby(["d", "sigma"]):
        row = {"d": d, "sigma / |mu|": sigma}
        for b, label in (("none", "not centred"), ("exact", "centred")):
            r = g[g["baseline"] == b].iloc[0]
            mc = f"{r['ratio']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"
            row |= {f"{label}: Monte Carlo [95%]": mc, f"{label}: exact": round(r["exact"], 3),
                    f"{label}: limit": round(r["limit"], 3)}
        out.append(row)
    return pd.DataFrame(out).set_index(["d", "sigma / |mu|"])


# --------------------------------------------------------------------------------------------
# Experiment 2: Platform2D with A2C (the runs themselves are in training.py)
# --------------------------------------------------------------------------------------------

def evaluation_auc(run: dict[str, Any]) -> np.ndarray:
    """Per evaluation episode, its return averaged over the evaluation points (the area under
    the evaluation curve: a measure of learning speed)."""
    return np.mean([p["returns"] for p in run["points"]], axis=0)


def tune_learning_rates(cfg: MarginalPGConfig, optimizer: str, cache: ArtifactCache | None = None,
                        show_progress: bool | None = None) -> dict[str, Any]:
    """Per method, the learning rate of ``lr_grid`` with the best mean evaluation AUC on the
    development seeds (the same grid and seeds for every method); the positive control
    takes the Gaussian's."""
    seeds = [DEV_SEED_OFFSET + i for i in range(cfg.dev_seeds)]
    scores, best = {}, {}
    for method in PLATFORM_METHODS:
        scores[method] = {}
        for lr in lr_grid(cfg, optimizer):
            aucs = [evaluation_auc(platform_run(cfg, method, s, optimizer, lr, probe=False,
                                                cache=cache, show_progress=show_progress)).mean()
                    for s in seeds]
            scores[method][lr] = float(np.mean(aucs))
        best[method] = max(scores[method], key=scores[method].get)
    best[POSITIVE_CONTROL] = best["Gaussian"]
    return {"optimizer": optimizer, "seeds": seeds, "scores": scores, "lr": best}


def tuning_table(platform: dict[str, Any]) -> pd.DataFrame:
    """Development-seed AUC per optimizer, learning rate (rows) and method (columns); the
    chosen rate of each method is marked with a star."""
    rows = []
    for optimizer, res in platform.items():
        tuned = res["tuning"]
        for lr in lr_grid_of(tuned):
            rows.append({"optimizer": optimizer, "lr": lr, **{
                m: f"{s[lr]:.3f}{' *' if tuned['lr'][m] == lr else ''}"
                for m, s in tuned["scores"].items()}})
    return pd.DataFrame(rows).set_index(["optimizer", "lr"])


def lr_grid_of(tuned: dict[str, Any]) -> list[float]:
    return sorted({lr for scores in tuned["scores"].values() for lr in scores})


def run_platform(cfg: MarginalPGConfig, seed: int = 0, cache: ArtifactCache | None = None,
                 show_progress: bool | None = None) -> dict[str, Any]:
    """Tuning, then every method on the evaluation seeds, for each optimizer of the config."""
    seeds = [seed + i for i in range(cfg.seeds)]
    out = {}
    for optimizer in cfg.optimizers:
        tuned = tune_learning_rates(cfg, optimizer, cache, show_progress)
        runs = {m: [platform_run(cfg, m, s, optimizer, tuned["lr"][m], cache=cache,
                                 show_progress=show_progress) for s in seeds]
                for m in ALL_PLATFORM_METHODS}
        out[optimizer] = {"tuning": tuned, "runs": runs}
    return out


def learning_curve(episode_env_steps: list[int], episode_returns: list[float],
                   total_env_steps: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean training-episode return per bin of environment steps (NaN where none ended)."""
    edges = np.linspace(0, total_env_steps, bins + 1)
    steps, returns = np.asarray(episode_env_steps), np.asarray(episode_returns)
    idx = np.clip(np.digitize(steps, edges[1:-1]), 0, bins - 1)
    means = np.full(bins, np.nan)
    for b in range(bins):
        if np.any(idx == b):
            means[b] = returns[idx == b].mean()
    return (edges[:-1] + edges[1:]) / 2, means


def evaluation_curves(runs: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """Long table: method, seed, update, env_steps, mean evaluation return, success rate."""
    rows = []
    for method, seeds in runs.items():
        for r in seeds:
            for p in r["points"]:
                rows.append({"method": method, "seed": r["seed"], "update": p["update"],
                             "env_steps": p["env_steps"], "return": np.mean(p["returns"])})
    return pd.DataFrame(rows)


def _stack(runs: list[dict[str, Any]], statistic: str, max_return: float) -> np.ndarray:
    """(seeds, episodes) of the final evaluation (``return``/``success``) or the AUC."""
    if statistic == "auc":
        return np.stack([evaluation_auc(r) for r in runs])
    final = np.stack([r["points"][-1]["returns"] for r in runs])
    return final if statistic == "return" else (final >= max_return - 1e-9).astype(float)


def paired_comparison(runs: dict[str, list[dict[str, Any]]], method: str, baseline: str,
                      statistic: str, max_return: float) -> Interval:
    """Paired interval of ``method - baseline`` over seeds and evaluation episodes."""
    if statistic not in ("return", "success", "auc"):
        raise ValueError(f"unknown statistic {statistic!r}; valid ones are return, success, auc")
    return paired_bootstrap(_stack(runs[method], statistic, max_return),
                            _stack(runs[baseline], statistic, max_return))


#: The comparisons of the returns table: (method, baseline).
COMPARISONS = (("APG", "Gaussian"), ("APG", "angle"), (POSITIVE_CONTROL, "Gaussian"))


def returns_table(platform: dict[str, Any], max_return: float) -> pd.DataFrame:
    """Paired differences of final return, final success rate and AUC, per optimizer."""
    rows = []
    for optimizer, res in platform.items():
        for method, baseline in COMPARISONS:
            row = {"optimizer": optimizer, "comparison": f"{method} - {baseline}"}
            for stat in ("success", "return", "auc"):
                iv = paired_comparison(res["runs"], method, baseline, stat, max_return)
                row.update({stat: iv.estimate, f"{stat} lo": iv.lo, f"{stat} hi": iv.hi})
            rows.append(row)
    return pd.DataFrame(rows)


def method_table(platform: dict[str, Any], max_return: float) -> pd.DataFrame:
    """Per optimizer and method: tuned lr, final success rate and return, AUC (means)."""
    rows = []
    for optimizer, res in platform.items():
        for method, runs in res["runs"].items():
            rows.append({"optimizer": optimizer, "method": method,
                         "lr": f"{res['tuning']['lr'][method]:g}",
                         "success": _stack(runs, "success", max_return).mean(),
                         "final return": _stack(runs, "return", max_return).mean(),
                         "AUC": _stack(runs, "auc", max_return).mean(),
                         "train s": sum(r["train_seconds"] for r in runs)})
    return pd.DataFrame(rows)


def probe_ratio(runs: dict[str, list[dict[str, Any]]], advantage: str = "centred",
                points: str = "all") -> Interval:
    """Var(marginal) / Var(standard) over the APG and Gaussian runs' probes: a ratio of sums
    over states, with a 95% interval over seeds x (method, point, rollout copy): the states
    one copy visits are correlated, so each copy's trajectory is one item.

    ``advantage``: ``critic``, ``centred``, ``loc_critic`` or ``loc_centred``; ``points``:
    ``all``, ``init`` (update 0) or ``trained`` (after update 0).
    """
    if points not in ("all", "init", "trained"):
        raise ValueError(f"unknown points {points!r}; valid ones are all, init, trained")
    std, mpg = [], []
    for s in range(len(runs["APG"])):
        per_seed = [p["probe"][advantage] for m in ("APG", "Gaussian") for p in runs[m][s]["points"]
                    if (points == "all" or (p["update"] == 0) == (points == "init"))]
        for out, key in ((std, "standard"), (mpg, "marginal")):
            # states are stored step-major (rollout step, copy): sum each copy's trajectory
            out.append(np.concatenate([np.reshape(v[key], (-1, runs["APG"][s]["copies"])).sum(0)
                                       for v in per_seed]))
    return bootstrap_interval(np.stack(mpg), denominators=np.stack(std))


def probe_table(platform: dict[str, Any]) -> pd.DataFrame:
    """The probe's ratio per optimizer, advantage (critic's or centred) and training stage."""
    rows = []
    for optimizer, res in platform.items():
        for adv in ("critic", "centred", "loc_critic", "loc_centred"):
            for pts in ("init", "trained", "all"):
                iv = probe_ratio(res["runs"], adv, pts)
                rows.append({"optimizer": optimizer, "advantage": adv, "points": pts,
                             "ratio": iv.estimate, "lo": iv.lo, "hi": iv.hi})
    return pd.DataFrame(rows)


def probe_curves(runs: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """Long table: method, seed, env_steps, ratio (critic's and centred advantages)."""
    rows = []
    for method in ("APG", "Gaussian"):
        for r in runs[method]:
            for p in r["points"]:
                row = {"method": method, "seed": r["seed"], "env_steps": p["env_steps"],
                       "mean |mu|": p["probe"]["mean_abs_loc"]}
                for adv in ("critic", "centred"):
                    v = p["probe"][adv]
                    row[adv] = np.sum(v["marginal"]) / np.sum(v["standard"])
                rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Full scale: CAPG on a gymnasium classic-control task
# --------------------------------------------------------------------------------------------

def run_control(cfg: MarginalPGConfig, seed: int = 0, cache: ArtifactCache | None = None,
                show_progress: bool | None = None) -> dict[str, list[dict[str, Any]]]:
    if not cfg.control_updates:
        return {}
    return {m: [control_run(cfg, m, seed + i, cache, show_progress)
                for i in range(cfg.control_seeds)] for m in CONTROL_METHODS}


def control_comparison(control: dict[str, list[dict[str, Any]]]) -> Interval:
    """Paired interval of CAPG - clipped Gaussian final return (seeds x evaluation episodes)."""
    a, b = (np.stack([r["final_returns"] for r in control[m]]) for m in CONTROL_METHODS)
    return paired_bootstrap(a, b)


# --------------------------------------------------------------------------------------------
# The chapter's entry point, metrics and claims
# --------------------------------------------------------------------------------------------

def run(config: MarginalPGConfig, seed: int = 0, cache: ArtifactCache | None = None,
        show_progress: bool | None = None) -> dict[str, Any]:
    """Everything the chapter shows: bandits, Platform2D (tuning, runs), control runs."""
    return {"bandits": run_bandits(config, seed),
            "platform": run_platform(config, seed, cache, show_progress),
            "control": run_control(config, seed, cache, show_progress)}


#: The bandit cells the claims read (fixed before any run: d = 2, the most concentrated
#: policy of the grid, goal at 60 degrees; CAPG with half the actions clipped, mu = -1).
CLAIM_D, CLAIM_GOAL, CLAIM_CLIP_LOC = 2, 60.0, -1.0


def _bandit_interval(rows: pd.DataFrame, shift: float = 0.0) -> Interval:
    """The one bandit row's ratio interval, shifted (``-1``: the change of the variance)."""
    if len(rows) != 1:
        raise ValueError(f"expected one bandit row, got {len(rows)}")
    row = rows.iloc[0]
    return Interval(row["ratio"] + shift, row["lo"] + shift, row["hi"] + shift)


def claim_metrics(results: dict[str, Any], cfg: MarginalPGConfig) -> dict[str, float]:
    """The intervals the claims read (``Interval.as_metrics``) and a few summary numbers."""
    metrics: dict[str, float] = {}
    bd, bc = results["bandits"]["directional"], results["bandits"]["clipped"]
    cell = bd[(bd.d == CLAIM_D) & (bd.goal == CLAIM_GOAL) & (bd.sigma == min(cfg.bandit_sigmas))]
    for b, name in (("none", "uncentred"), ("exact", "centred")):
        rows = cell[cell.baseline == b]
        metrics |= _bandit_interval(rows).as_metrics(f"bandit_d2_{name}_ratio")
        metrics |= _bandit_interval(rows, -1.0).as_metrics(f"bandit_d2_{name}_ratio_change")
        metrics[f"bandit_d2_{name}_exact"] = float(rows.iloc[0]["exact"])
        clip = bc[(bc["loc"] == CLAIM_CLIP_LOC) & (bc.baseline == b)]
        if len(clip):
            metrics |= _bandit_interval(clip, -1.0).as_metrics(f"capg_{name}_ratio_change")
    metrics["bandit_max_abs_z"] = float(max(bd[["z_standard", "z_marginal"]].to_numpy().max(),
                                            bc[["z_standard", "z_marginal"]].to_numpy().max()))
    max_return = platform_geometry(cfg).max_return
    for optimizer, res in results["platform"].items():
        runs = res["runs"]
        for adv in ("critic", "centred"):
            metrics |= probe_ratio(runs, adv, "trained").as_metrics(
                f"platform_ratio_{adv}_{optimizer}")
        for (method, baseline), tag in zip(COMPARISONS, ("apg_vs_gaussian", "apg_vs_angle",
                                                           "control_vs_gaussian"), strict=True):
            for stat in ("success", "auc"):
                metrics |= paired_comparison(runs, method, baseline, stat, max_return) \
                    .as_metrics(f"{stat}_{tag}_{optimizer}")
    if results["control"]:
        metrics |= control_comparison(results["control"]).as_metrics("control_capg_vs_gaussian")
    return metrics


_PAPER_APG = "Only APG reaches the maximum return (Fig. 3); our reading: +0.5 success rate"
CLAIMS = [
    Claim.interval(CHAPTER, "bandit-variance-reduction",
                   "APG's gradient variance is below the standard estimator's (directional "
                   "bandit, d = 2, concentrated policy, reward centred by the exact baseline)",
                   paper="Thm 4.6 / Cor 4.7: lower by E[Var(g | T(a))]; 'about half'",
                   prefix="bandit_d2_centred_ratio_change", paper_effect=-0.5,
                   unit="variance ratio - 1", section="marginal-pg-bandit"),
    Claim.interval(CHAPTER, "bandit-ratio-half-uncentred",
                   "Variance ratio about 1/2 = (d-1)/d at d = 2, reward not centred",
                   paper="about 1/2", prefix="bandit_d2_uncentred_ratio", target=(0.45, 0.55),
                   unit="variance ratio", section="marginal-pg-bandit"),
    Claim.interval(CHAPTER, "bandit-ratio-half-centred",
                   "Variance ratio about 1/2 = (d-1)/d at d = 2, reward centred (exact baseline)",
                   paper="about 1/2", prefix="bandit_d2_centred_ratio", target=(0.45, 0.55),
                   unit="variance ratio", section="marginal-pg-bandit"),
    Claim.interval(CHAPTER, "capg-variance-reduction",
                   "CAPG's variance is below the standard estimator's where actions are "
                   "clipped (mu = -1, half the actions clipped, reward centred)",
                   paper="Cor 4.8: strictly lower when actions are clipped (no number printed; "
                         "our reading: 'about half' as for APG)",
                   prefix="capg_centred_ratio_change", paper_effect=-0.5,
                   unit="variance ratio - 1", section="marginal-pg-capg"),
    Claim.interval(CHAPTER, "platform-variance-ratio",
                   "Var(APG) / Var(standard) of the actor gradient on Platform2D, advantages "
                   "centred per state, along training (SGD runs)",
                   paper="about 1/2", prefix="platform_ratio_centred_sgd", target=(0.4, 0.6),
                   unit="variance ratio", section="marginal-pg-platform-variance"),
    Claim.interval(CHAPTER, "apg-success-sgd",
                   "APG reaches the goal more often than the Gaussian policy at the end of "
                   "training on Platform2D (SGD, tuned learning rates)", paper=_PAPER_APG,
                   prefix="success_apg_vs_gaussian_sgd", paper_effect=0.5,
                   unit="success-rate difference", percent=True,
                   section="marginal-pg-platform-returns"),
    Claim.interval(CHAPTER, "apg-success-adam",
                   "APG reaches the goal more often than the Gaussian policy at the end of "
                   "training on Platform2D (Adam, tuned learning rates)", paper=_PAPER_APG,
                   prefix="success_apg_vs_gaussian_adam", paper_effect=0.5,
                   unit="success-rate difference", percent=True,
                   section="marginal-pg-platform-returns"),
    Claim.interval(CHAPTER, "apg-vs-angle-success-sgd",
                   "APG reaches the goal more often than the 1-D angle policy (SGD)",
                   paper=_PAPER_APG, prefix="success_apg_vs_angle_sgd", paper_effect=0.5,
                   unit="success-rate difference", percent=True,
                   section="marginal-pg-platform-returns"),
]


def verdict_table(metrics: dict[str, float]) -> pd.DataFrame:
    """Each claim, the paper's figure, ours with its interval, and the verdict."""
    return pd.DataFrame(verdict_rows(CLAIMS, metrics)).drop(columns="id")
