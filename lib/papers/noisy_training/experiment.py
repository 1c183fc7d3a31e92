"""Noisy training improves E2E ASR for the edge (Wang, Shangguan, Yang et al., 2021): the
experiment.

Problem. Streaming end-to-end recognisers that run on a device are small, often pruned,
and prone to overfit their training data: they lose accuracy on unseen speakers and
conditions. The paper trains them with weight noise (``method.py``) and reports consistent
WER reductions for dense and sparse Emformer RNN-T, and 12% (test-other) / 14% (test-clean)
relative at 90% sparsity on LibriSpeech.

The chapter compares four conditions (dense, dense + noise, sparse, sparse + noise), each
fine-tuned from the shared dense model (``task.py``), over ``n_seeds`` seeds, with sigma
picked on dev from a sweep. The flatness probe (``flatness_probe``) measures the "smoother
model" claim directly: the training loss at ``W + r * std(W) * z`` along a few fixed random
directions ``z``, as a function of the radius ``r``; a flatter minimum loses less.

**Our reading.** The paper publishes no code and, beyond "random noise in the parameter
space during training", none of the following; each is a knob of ``NoisyTrainingConfig``:

* Gaussian, zero-mean noise, drawn afresh every step (one draw per step for the whole
  batch), on every weight matrix (tensors with two or more dimensions: linear, embedding
  and LSTM-gate weights), never on biases or normalisation scales;
* additive noise scaled by each tensor's standard deviation (``noise_kind``; the
  multiplicative variant scales by each weight's own magnitude);
* a constant scale (``noise_schedule``: "linear" or "cosine" anneal it to 0 from
  ``anneal_start``); ``sigma`` chosen by dev-set WER from ``sweep_sigmas`` unless set;
* the gradient at the noisy weights updates the clean weights (steps 2-4 of ``method.py``);
* pruning: the Emformer encoder's weight matrices, each to the same sparsity, which ramps
  up over the first ``prune_ramp_fraction`` of training, masks refreshed every
  ``prune_every`` steps; noise on the kept weights only;
* every model (dense or pruned, with or without noise) is *fine-tuned* for the same
  number of steps from the shared cached dense recogniser (``lib.asr.dense_asr``), not
  trained with noise from scratch as the paper's presumably were: this keeps the
  chapter's cold cost to minutes on a CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib.asr import (
    ASRModel,
    TrainConfig,
    dense_asr_artifact,
    dense_asr_key,
    dense_recipe,
    evaluate_wer,
    model_from_artifact,
)
from lib.core import ArtifactCache, ScaleConfigs, derive_seed, make_generator, select_device
from lib.core.claims import Claim
from lib.core.limits import limit_steps
from lib.sparse import attach_mask

from .method import (
    NOISE_KINDS,
    NOISE_SCHEDULES,
    encoder_matrices,
    finetune,
    perturbed_weights,
)
from .task import dense_start_artifact, eval_split_names, load_sets


@dataclass(frozen=True)
class NoisyTrainingConfig:
    """Every knob of the chapter (see the module docstring for the "our reading" ones)."""

    dense_scale: str                 # which shared dense recogniser (lib.asr.DENSE_RECIPES)
    dense_seed: int = 0              # its seed (also the corpus seed)
    # fine-tuning (all conditions alike)
    steps: int = 300
    batch_size: int = 16
    dense_batch_size: int = 0        # the dense model's training batch (0: its recipe's)
    lr: float = 3e-4
    warmup_steps: int = 30
    clip_grad_norm: float = 10.0
    # pruning
    sparsity: float = 0.9
    prune_ramp_fraction: float = 0.6
    prune_every: int = 10
    # noise
    sigma: float | None = None       # None: the sweep's best on the dev set
    noise_kind: str = "additive"
    noise_schedule: str = "constant"
    anneal_start: float = 0.0
    sweep_sigmas: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2)
    n_seeds: int = 3
    # evaluation
    held_out_snr_db: float | None = 5.0  # digits: test voices with extra noise at this SNR
    eval_batch_size: int = 64
    flatness_radii: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    flatness_draws: int = 2
    flatness_utterances: int = 64
    gpus: int = 0                    # full scale: DDP workers (0: every visible GPU)

    def __post_init__(self):
        if self.noise_kind not in NOISE_KINDS:
            raise ValueError(f"noise_kind must be one of {NOISE_KINDS}, got {self.noise_kind!r}")
        if self.noise_schedule not in NOISE_SCHEDULES:
            raise ValueError(f"noise_schedule must be one of {NOISE_SCHEDULES}, "
                             f"got {self.noise_schedule!r}")
        if not 0.0 < self.sparsity < 1.0:
            raise ValueError(f"sparsity must lie in (0, 1), got {self.sparsity}")
        if self.sigma is not None and self.sigma <= 0:
            raise ValueError(f"sigma must be > 0 (or None to pick it on dev), got {self.sigma}")
        if not self.sweep_sigmas or any(s <= 0 for s in self.sweep_sigmas):
            raise ValueError(f"sweep_sigmas must be non-empty and > 0, got {self.sweep_sigmas}")
        if self.n_seeds < 1 or self.steps < 1 or self.prune_every < 1:
            raise ValueError("need n_seeds >= 1, steps >= 1 and prune_every >= 1")
        if not 0.0 < self.prune_ramp_fraction <= 1.0:
            raise ValueError(f"prune_ramp_fraction must lie in (0, 1], "
                             f"got {self.prune_ramp_fraction}")
        if not self.flatness_radii or any(r < 0 for r in self.flatness_radii):
            raise ValueError(f"flatness_radii must be non-empty and >= 0, "
                             f"got {self.flatness_radii}")

    @property
    def recipe(self):
        return dense_recipe(self.dense_scale, self.dense_batch_size)

    def finetune_config(self) -> TrainConfig:
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           warmup_steps=self.warmup_steps, decay="cosine",
                           clip_grad_norm=self.clip_grad_norm,
                           specaugment=self.recipe.train.specaugment,
                           num_workers=self.recipe.train.num_workers)


CONFIGS = ScaleConfigs(
    smoke=NoisyTrainingConfig(dense_scale="smoke", steps=2, batch_size=8, warmup_steps=1,
                              prune_every=1, sweep_sigmas=(0.05,), n_seeds=1,
                              eval_batch_size=32, flatness_radii=(0.0, 0.2),
                              flatness_draws=1, flatness_utterances=8),
    tutorial=NoisyTrainingConfig(dense_scale="tutorial", steps=400, prune_ramp_fraction=0.5),
    full=NoisyTrainingConfig(dense_scale="full", steps=30_000, batch_size=512, lr=5e-4,
                             warmup_steps=2000, prune_every=500, prune_ramp_fraction=0.5,
                             held_out_snr_db=None, sweep_sigmas=(0.02, 0.05, 0.1),
                             flatness_utterances=256),
)



# --- one fine-tuned condition, cached -----------------------------------------------------

def load_run_model(dense_artifact: dict[str, Any], run: dict[str, Any]) -> ASRModel:
    """The fine-tuned model of a run (eval mode); a sparse one gets its masks back
    (``W != 0`` on the pruned layers) so perturbations keep pruned weights at zero."""
    model, _ = model_from_artifact(dense_artifact)
    model.load_state_dict(run["state_dict"])
    if run["sparsity"] > 0:
        for m in encoder_matrices(model):
            attach_mask(m, (m.weight != 0).float())
    return model.eval()


def pruned_fraction(model: ASRModel) -> float:
    """Fraction of zero weights among the encoder's linear layers."""
    layers = encoder_matrices(model)
    return sum(int((m.weight == 0).sum()) for m in layers) / sum(m.weight.numel()
                                                                for m in layers)


def _finetune_on_train_set(dense_artifact, config, sparsity, sigma, seed, ckpt_dir,
                           run_key) -> dict[str, Any]:
    """``finetune`` on the config's training set, loaded here (one data-parallel rank)."""
    sets, _ = load_sets(config)
    return finetune(dense_artifact, sets["train"], config, sparsity=sparsity, sigma=sigma,
                    seed=seed, ckpt_dir=ckpt_dir, run_key=run_key)


def _run_key(config: NoisyTrainingConfig, sparsity: float, sigma: float,
             seed: int) -> dict[str, Any]:
    """What a run depends on (the sweep list, seeds count and probe settings do not)."""
    keep = ("dense_scale", "dense_seed", "steps", "batch_size", "lr", "warmup_steps",
            "clip_grad_norm", "prune_ramp_fraction", "prune_every", "noise_kind",
            "held_out_snr_db", "eval_batch_size")
    key = {k: getattr(config, k) for k in keep}
    if sigma > 0:  # the schedule only matters when there is noise
        key.update(noise_schedule=config.noise_schedule, anneal_start=config.anneal_start)
    else:
        key.pop("noise_kind")
    return {**key, "recipe": config.recipe, "sparsity": sparsity, "sigma": sigma,
            "seed": seed}


def _build_run(config: NoisyTrainingConfig, sparsity: float, sigma: float, seed: int,
               device: str, cache: ArtifactCache, ckpt_dir: Path,
               run_key: str) -> dict[str, Any]:
    from lib.core.distributed import requested_workers, run_data_parallel

    dense = dense_asr_artifact(config.recipe, config.dense_seed, cache)
    t0 = time.perf_counter()
    sets, tokenizer = load_sets(config)
    data_s = time.perf_counter() - t0
    if config.recipe.data == "librispeech":  # full scale: checkpointed, data-parallel
        out = run_data_parallel(_finetune_on_train_set, requested_workers(config.gpus or None),
                                dense, config, sparsity, sigma, seed, str(ckpt_dir), run_key,
                                workdir=ckpt_dir)
    else:
        out = finetune(dense, sets["train"], config, sparsity=sparsity, sigma=sigma,
                       seed=seed, device=device)
    run = {**out, "sparsity": sparsity, "sigma": sigma, "seed": seed}
    model = load_run_model(dense, run).to(select_device(device))
    t0 = time.perf_counter()
    wer = {split: evaluate_wer(model, sets[split], tokenizer,
                               batch_size=config.eval_batch_size)
           for split in eval_split_names(config).values()}
    return {**run, "wer": wer, "eval_seconds": time.perf_counter() - t0,
            "data_seconds": data_s, "measured_sparsity": pruned_fraction(model)}


def run_artifact(config: NoisyTrainingConfig, *, sparsity: float, sigma: float, seed: int,
                 device: str = "auto", cache: ArtifactCache | None = None) -> dict[str, Any]:
    """One fine-tuned condition (state dict, log, WERs), built once per key."""
    cache = cache or ArtifactCache()
    return cache.get_or_train(
        "noisy-training-run", _run_key(config, sparsity, sigma, seed),
        lambda ckpt, run: _build_run(config, sparsity, sigma, seed, device, cache, ckpt, run),
        depends_on=[dense_asr_key(config.recipe, config.dense_seed, cache)])


def run_is_cached(config: NoisyTrainingConfig, *, sparsity: float, sigma: float, seed: int,
                  cache: ArtifactCache | None = None) -> bool:
    cache = cache or ArtifactCache()
    return cache.contains(
        "noisy-training-run", _run_key(config, sparsity, sigma, seed),
        code=[run_artifact],
        depends_on=[dense_asr_key(config.recipe, config.dense_seed, cache)])



# --- the flatness probe -------------------------------------------------------------------

@torch.no_grad()
def mean_loss(model: ASRModel, dataset, batch_size: int = 32) -> float:
    """RNN-T loss per utterance averaged over ``dataset`` (eval mode: no dropout/SpecAug)."""
    model.eval()
    total, n = 0.0, len(dataset)
    for start in range(0, n, batch_size):
        batch = dataset.batch(range(start, min(n, start + batch_size)))
        total += float(model(batch.to(next(model.parameters()).device))) * len(batch)
    return total / n


@torch.no_grad()
def flatness_probe(model: ASRModel, dataset, radii: Sequence[float], draws: int, seed: int,
                   batch_size: int = 32) -> torch.Tensor:
    """``loss[i, d]`` at ``W + radii[i] * std(W) * z_d`` (masked), ``z_d`` the same random
    direction for every radius (and every model probed with the same ``seed``)."""
    base = mean_loss(model, dataset, batch_size)
    out = torch.empty(len(radii), draws, dtype=torch.float64)
    device = next(model.parameters()).device
    for i, r in enumerate(radii):
        for d in range(draws):
            if r == 0:
                out[i, d] = base
                continue
            g = make_generator(derive_seed(seed, "flatness-direction", d), device)
            with perturbed_weights(model, r, kind="additive", generator=g):
                out[i, d] = mean_loss(model, dataset, batch_size)
    return out



# --- the experiment -----------------------------------------------------------------------

def conditions(config: NoisyTrainingConfig, sigma: float) -> list[tuple[str, float, float]]:
    """``(name, sparsity, sigma)`` of the four compared conditions."""
    return [("dense", 0.0, 0.0), ("dense+noise", 0.0, sigma),
            (f"sparse {config.sparsity:.0%}", config.sparsity, 0.0),
            (f"sparse {config.sparsity:.0%}+noise", config.sparsity, sigma)]


def _summary(run: dict[str, Any], roles: dict[str, str]) -> dict[str, Any]:
    out = {"sparsity": run["sparsity"], "sigma": run["sigma"], "seed": run["seed"],
           "measured_sparsity": run["measured_sparsity"],
           "build_seconds": run["train_seconds"] + run["eval_seconds"],
           "final_loss": float(np.mean([h["loss"] for h in run["history"][-20:]]))}
    out.update({f"wer_{role}": run["wer"][split] for role, split in roles.items()})
    return out


def run(config: NoisyTrainingConfig, seed: int = 0, *, device: str = "auto",
        cache: ArtifactCache | None = None) -> dict[str, Any]:
    """Everything the chapter shows (each trained model from the artifact cache):

    * ``sweep``: 90%-sparse fine-tuning at every sweep sigma (and 0), seed ``seed``;
    * ``sigma``: ``config.sigma`` or the sweep's lowest dev WER;
    * ``runs``: the four conditions x ``n_seeds`` seeds at that sigma;
    * ``flatness``: the probe on every run of ``runs``; ``flatness_sweep``: on the sweep;
    * ``dense_start``: the shared dense model's WERs; ``seconds``: build times.
    """
    cache = cache or ArtifactCache()
    roles = eval_split_names(config)
    dense = dense_asr_artifact(config.recipe, config.dense_seed, cache)

    def get(sparsity, sigma, s):
        return run_artifact(config, sparsity=sparsity, sigma=sigma, seed=s, device=device,
                            cache=cache)

    sweep = [{**_summary(get(config.sparsity, s, seed), roles)}
             for s in (0.0, *config.sweep_sigmas[:limit_steps(len(config.sweep_sigmas))])]
    if config.sigma is not None:
        sigma = config.sigma
    else:
        noisy = [r for r in sweep if r["sigma"] > 0]
        sigma = min(noisy, key=lambda r: r["wer_dev"])["sigma"]
    seeds = [seed + i for i in range(limit_steps(config.n_seeds))]
    rows, keys = [], []
    for name, sparsity, sig in conditions(config, sigma):
        for s in seeds:
            rows.append({"condition": name, **_summary(get(sparsity, sig, s), roles)})
            keys.append((sparsity, sig, s))
    flat = flatness_artifact(config, keys, device=device, cache=cache)
    flat_sweep = flatness_artifact(config, [(config.sparsity, r["sigma"], seed) for r in sweep],
                                   device=device, cache=cache)
    start = dense_start_artifact(config, device=device, cache=cache)
    return {"sweep": sweep, "sigma": sigma, "runs": rows, "flatness": flat, "seeds": seeds,
            "flatness_sweep": flat_sweep, "dense_start": start["wer"], "roles": roles,
            "dense_train_seconds": float(dense.get("train_seconds", 0.0)),
            "build_seconds": sum(r["build_seconds"] for r in rows) + sum(
                r["build_seconds"] for r in sweep if r["sigma"] not in (0.0, sigma))
            + flat["seconds"] + flat_sweep["seconds"] + start["seconds"]}


def flatness_artifact(config: NoisyTrainingConfig, keys: Sequence[tuple[float, float, int]],
                      *, device: str = "auto",
                      cache: ArtifactCache | None = None) -> dict[str, Any]:
    """The flatness probe of the runs ``keys = [(sparsity, sigma, seed), ...]`` on the
    first ``flatness_utterances`` training utterances (cached)."""
    cache = cache or ArtifactCache()
    key = {"runs": [_run_key(config, *k) for k in keys], "radii": config.flatness_radii,
           "draws": limit_steps(config.flatness_draws),
           "utterances": limit_steps(config.flatness_utterances)}

    def build() -> dict[str, Any]:
        dense = dense_asr_artifact(config.recipe, config.dense_seed, cache)
        sets, _ = load_sets(config)
        probe_set = sets["train"].subset(range(min(len(sets["train"]),
                                                   key["utterances"])))
        t0 = time.perf_counter()
        losses = []
        for sparsity, sigma, s in keys:
            r = run_artifact(config, sparsity=sparsity, sigma=sigma, seed=s, device=device,
                             cache=cache)
            model = load_run_model(dense, r).to(select_device(device))
            losses.append(flatness_probe(model, probe_set, config.flatness_radii,
                                         key["draws"],
                                         derive_seed(config.dense_seed, "probe"),
                                         batch_size=config.eval_batch_size))
        return {"keys": [list(k) for k in keys], "radii": list(config.flatness_radii),
                "loss": torch.stack(losses), "seconds": time.perf_counter() - t0}

    return cache.get_or_create("noisy-training-flatness", key, build, depends_on=[
        dense_asr_key(config.recipe, config.dense_seed, cache)])



# --- numbers for the chapter --------------------------------------------------------------

def relative_improvement(baseline_wer: float, noisy_wer: float) -> float:
    """``(WER_base - WER_noisy) / WER_base`` (positive: noise helps), as the paper reports."""
    if baseline_wer <= 0:
        return math.nan
    return (baseline_wer - noisy_wer) / baseline_wer


def summary_table(rows: Sequence[dict[str, Any]], roles: Sequence[str]):
    """Mean, std and per-seed WER (%) per condition and test set (a pandas DataFrame)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    out = []
    for name, group in df.groupby("condition", sort=False):
        rec = {"condition": name, "seeds": len(group)}
        for role in roles:
            v = 100 * group[f"wer_{role}"].to_numpy()
            rec[f"{role} mean"] = v.mean()
            rec[f"{role} std"] = v.std(ddof=1) if len(v) > 1 else math.nan
            rec[f"{role} per seed"] = " / ".join(f"{x:.1f}" for x in v)
        out.append(rec)
    return pd.DataFrame(out).set_index("condition")


def improvements(rows: Sequence[dict[str, Any]], roles: Sequence[str],
                 config: NoisyTrainingConfig) -> dict[str, dict[str, float]]:
    """Per ``kind`` (dense, sparse) and test set: the relative WER improvement of noise
    (``role``, on the means over seeds), the absolute one (``role_abs``, WER fraction), the
    baseline's spread over seeds (``role_spread``, sample std) and how many seeds improved
    (``role_seeds_better`` of ``role_seeds``, paired by seed)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    out: dict[str, dict[str, float]] = {}
    for kind, sparsity in (("dense", 0.0), ("sparse", config.sparsity)):
        sub = df[df["sparsity"] == sparsity]
        base, noisy = sub[sub["sigma"] == 0].set_index("seed"), \
            sub[sub["sigma"] > 0].set_index("seed")
        for role in roles:
            col = f"wer_{role}"
            paired = (base[col] - noisy[col]).dropna()
            res = out.setdefault(kind, {})
            res[role] = relative_improvement(base[col].mean(), noisy[col].mean())
            res[f"{role}_abs"] = float(base[col].mean() - noisy[col].mean())
            res[f"{role}_spread"] = float(base[col].std(ddof=1)) if len(base) > 1 else 0.0
            res[f"{role}_seeds_better"] = int((paired > 0).sum())
            res[f"{role}_seeds"] = int(len(paired))
    return out


def effect_verdict(improvement: dict[str, float], roles: Sequence[str],
                   labels: dict[str, str]) -> str:
    """One sentence on what noise did, from ``improvements(...)[kind]``: a test set counts
    as helped (hurt) only when the mean WER falls (rises) by more than the baseline's
    spread over seeds."""
    effect = {}
    for r in roles:
        gain, spread = improvement[f"{r}_abs"], improvement[f"{r}_spread"]
        effect[r] = "helps" if gain > spread else "hurts" if gain < -spread else "within"
    better = sum(improvement[f"{r}_seeds_better"] for r in roles)
    total = sum(improvement[f"{r}_seeds"] for r in roles)
    changes = ", ".join(f"{labels[r]} {100 * improvement[r]:+.1f}%" for r in roles)
    kinds = set(effect.values())
    if kinds == {"helps"}:
        head = ("noise helps on every test set and every seed" if better == total else
                "noise lowers WER beyond the seed spread on every test set")
    elif kinds == {"within"}:
        head = "no effect beyond the seed spread on any test set"
    elif kinds == {"hurts"}:
        head = "noise raises WER beyond the seed spread on every test set"
    else:
        head = "mixed: " + "; ".join(
            f"{verb} on {', '.join(labels[r] for r in roles if effect[r] == key)}"
            for key, verb in (("helps", "helps"), ("hurts", "hurts"),
                              ("within", "within the seed spread"))
            if key in kinds)
    return (f"{head} (relative improvement {changes}; {better}/{total} seed x test-set "
            "pairs improve)")


def flatness_rise(flat: dict[str, Any]) -> tuple[np.ndarray, dict[tuple, np.ndarray]]:
    """``(radii, {(sparsity, sigma, seed): L(W + r std z) - L(W)})``, the rise averaged over
    the probe's random directions."""
    radii = np.asarray(flat["radii"], dtype=float)
    loss = flat["loss"].numpy()                        # (runs, radii, draws)
    rise = (loss - loss[:, :1, :]).mean(axis=2)        # (runs, radii)
    return radii, {tuple(k): rise[i] for i, k in enumerate(flat["keys"])}


def flatness_curves(flat: dict[str, Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per condition: the loss rise against the radius, as ``(radii, mean over seeds, min
    over seeds, max over seeds)``."""
    radii, rise = flatness_rise(flat)
    curves: dict[str, Any] = {}
    for r in rows:
        curves.setdefault(r["condition"], []).append(rise[(r["sparsity"], r["sigma"],
                                                           r["seed"])])
    return {name: (radii, np.mean(v, 0), np.min(v, 0), np.max(v, 0))
            for name, v in curves.items()}



# --- claims ------------------------------------------------------------------------------------
CLAIMS = [
    Claim.interval("noisy_training", "sparse-unseen",
                   "Weight noise during training lowers the WER of a 90%-sparse recogniser on "
                   "unseen data", paper="12% (test-other), 14% (test-clean) relative",
                   prefix="relwer_noise_vs_plain_s90_unseen", paper_effect=-0.12,
                   unit="relative WER change", percent=True),
]

