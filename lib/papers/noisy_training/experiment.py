"""Noisy training improves E2E ASR for the edge (Wang, Shangguan, Yang et al., 2021): the
experiment.

Problem. Streaming end-to-end recognisers that run on a device are small, often pruned,
and prone to overfit their training data: they lose accuracy on unseen speakers and
conditions. The paper trains them with weight noise (``method.py``) and reports consistent
WER reductions for dense and sparse Emformer RNN-T, and 12% (test-other) / 14% (test-clean)
relative at 90% sparsity on LibriSpeech.

**The regime.** A regulariser can only help where a model overfits. At tutorial scale
each condition trains a small Emformer RNN-T *from scratch* on the chapter's own digit
corpus with few training voices (``corpus``: 3 of the corpus's 10 training voice
variants, a few hundred utterances) for many epochs, without SpecAugment, dropout or
weight decay: the training utterances are recognised far better than unseen voices (the
gap the chapter shows first). The **positive control** is a known regulariser on the same
set-up: dropout, tuned on dev with as many runs as sigma (``sweep_dropouts`` against
``sweep_sigmas``), must lower unseen-voice WER at 3 seeds. Noise from the start
(``start="scratch"``) and noise as fine-tuning of the shared dense recogniser
(``start="finetune"``, ``lib.asr.dense_asr``) are both knobs.

The compared conditions: plain and noisy training at each of ``sparsities`` (dense, 70%,
90%), ``n_seeds`` seeds, the same seeds for every condition; each comparison is a paired
bootstrap over seeds and test utterances of the relative WER change
(``lib.core.stats.paired_bootstrap``), judged against the paper's effect
(``lib.core.stats.verdict``). The flatness probe (``flatness_probe``) measures the "smoother
model" claim: the training loss at ``W + r * std(W) * z`` along fixed random directions.

**Our reading.** The paper publishes no code and, beyond "random noise in the parameter
space during training", none of the following; each is a knob of ``NoisyTrainingConfig``:

* Gaussian, zero-mean noise, drawn afresh every step (one draw per step for the whole
  batch), on every weight matrix (tensors with two or more dimensions: linear, embedding
  and LSTM-gate weights), never on biases or normalisation scales;
* additive noise scaled by each tensor's standard deviation (``noise_kind``; the
  multiplicative variant scales by each weight's own magnitude);
* a constant scale (``noise_schedule``: "linear" or "cosine" anneal it to 0 from
  ``anneal_start``); ``sigma`` chosen by dev-set WER of the dense model from
  ``sweep_sigmas`` unless set, then used at every sparsity;
* the gradient at the noisy weights updates the clean weights (steps 2-4 of ``method.py``);
* pruning: the Emformer encoder's weight matrices, each to the same sparsity, which ramps
  up over the first ``prune_ramp_fraction`` of training, masks refreshed every
  ``prune_every`` steps; noise on the kept weights only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib.asr import (
    ASRModel,
    DigitCorpusConfig,
    RNNTModelConfig,
    TrainConfig,
    dense_asr_artifact,
    dense_asr_key,
    dense_recipe,
    evaluate_wer,
    model_from_artifact,
    small_rnnt_config,
    utterance_word_errors,
)
from lib.core import ArtifactCache, ScaleConfigs, derive_seed, make_generator, select_device
from lib.core import seed_everything as _seed_everything
from lib.core.claims import Claim
from lib.core.limits import limit_steps
from lib.core.stats import INCONCLUSIVE, Interval, paired_bootstrap, verdict
from lib.sparse import attach_mask

from .method import (
    NOISE_KINDS,
    NOISE_SCHEDULES,
    encoder_matrices,
    finetune,
    perturbed_weights,
    train_noisy,
)
from .task import PAPER_IMPROVEMENT_90, eval_split_names, load_sets, role_labels

STARTS = ("scratch", "finetune")


@dataclass(frozen=True)
class NoisyTrainingConfig:
    """Every knob of the chapter (see the module docstring for the "our reading" ones)."""

    dense_scale: str                 # the shared dense recipe (data kind; finetune's start)
    dense_seed: int = 0              # its seed (also the corpus seed)
    start: str = "scratch"           # "scratch": noise from the start; "finetune": from dense
    corpus: DigitCorpusConfig | None = None   # digits: the chapter's corpus (None: recipe's)
    model: RNNTModelConfig | None = None      # scratch: the model (None: the recipe's)
    # training (all conditions alike)
    steps: int = 300
    batch_size: int = 16
    dense_batch_size: int = 0        # the dense model's training batch (0: its recipe's)
    lr: float = 3e-4
    warmup_steps: int = 30
    clip_grad_norm: float = 10.0
    weight_decay: float = 0.0
    specaugment: tuple[int, int, int, int] = (0, 0, 0, 0)  # (F, mF, T, mT); zeros: off
    dropout: float = 0.0             # the baseline's dropout (the untuned default)
    # pruning
    sparsities: tuple[float, ...] = (0.0, 0.7, 0.9)
    sparsity: float = 0.9            # the paper's headline level (the claim)
    prune_ramp_fraction: float = 0.5
    prune_every: int = 10
    # noise
    sigma: float | None = None       # None: the sweep's best on the dev set
    noise_kind: str = "additive"
    noise_schedule: str = "constant"
    anneal_start: float = 0.0
    # equal tuning effort on dev, one seed, dense: sigma for noise, dropout for the
    # baseline (the positive control), each as many runs beside the shared plain run
    sweep_sigmas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8)
    sweep_dropouts: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
    n_seeds: int = 3
    # evaluation
    held_out_snr_db: float | None = 5.0  # digits: test voices + noise at this speech SNR
    eval_batch_size: int = 64
    n_boot: int = 2000
    flatness_radii: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    flatness_draws: int = 2
    flatness_utterances: int = 64
    gpus: int = 0                    # full scale: DDP workers (0: every visible GPU)

    def __post_init__(self):
        if self.start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {self.start!r}")
        if self.noise_kind not in NOISE_KINDS:
            raise ValueError(f"noise_kind must be one of {NOISE_KINDS}, got {self.noise_kind!r}")
        if self.noise_schedule not in NOISE_SCHEDULES:
            raise ValueError(f"noise_schedule must be one of {NOISE_SCHEDULES}, "
                             f"got {self.noise_schedule!r}")
        if not 0.0 < self.sparsity < 1.0:
            raise ValueError(f"sparsity must lie in (0, 1), got {self.sparsity}")
        if any(not 0.0 <= s < 1.0 for s in self.sparsities) or \
                self.sparsity not in self.sparsities:
            raise ValueError(f"sparsities must lie in [0, 1) and hold sparsity "
                             f"{self.sparsity}, got {self.sparsities}")
        if self.sigma is not None and self.sigma <= 0:
            raise ValueError(f"sigma must be > 0 (or None to pick it on dev), got {self.sigma}")
        if not self.sweep_sigmas or any(s <= 0 for s in self.sweep_sigmas):
            raise ValueError(f"sweep_sigmas must be non-empty and > 0, got {self.sweep_sigmas}")
        if not self.sweep_dropouts or any(not 0 < p < 1 for p in self.sweep_dropouts):
            raise ValueError(f"sweep_dropouts must be non-empty, in (0, 1), "
                             f"got {self.sweep_dropouts}")
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

    @property
    def model_config(self) -> RNNTModelConfig:
        """The architecture trained from scratch (the config's dropout)."""
        return replace(self.model or self.recipe.model, dropout=self.dropout)

    def finetune_config(self) -> TrainConfig:
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           warmup_steps=self.warmup_steps, decay="cosine",
                           weight_decay=self.weight_decay, clip_grad_norm=self.clip_grad_norm,
                           specaugment=self.specaugment,
                           num_workers=self.recipe.train.num_workers)


_DIGITS = 12  # eleven digit words + blank
#: the tutorial's small-data regime: 3 training voice variants (18 speakers with the six
#: accents), 240 training utterances; 1000 test utterances of 4 unseen variants
_FEW_VOICES = DigitCorpusConfig(n_train=240, n_dev=200, n_test=1000, n_test_seen=200,
                                train_variants=("m1", "f1", "klatt"))
#: the smoke test's 2-layer Emformer of width 64 (16 stacked to 4 frames)
_TINY_MODEL = small_rnnt_config(_DIGITS, encoding_dim=64, time_reduction_input_dim=16,
                                num_heads=2, ffn_dim=128, num_layers=2,
                                symbol_embedding_dim=32)
#: the tutorial's: 8 frames stacked into each encoder frame (the Emformer recipe's time
#: reduction, half the encoder frames of stride 4, so a step costs less), width 96, so
#: that the 90%-sparse encoder (15k of 147k weights) still fits its training utterances
_SMALL_MODEL = small_rnnt_config(_DIGITS, encoding_dim=64, time_reduction_input_dim=12,
                                 time_reduction_stride=8, right_context_length=8,
                                 num_heads=2, ffn_dim=192, num_layers=2,
                                 symbol_embedding_dim=32)

CONFIGS = ScaleConfigs(
    smoke=NoisyTrainingConfig(
        dense_scale="smoke", steps=3, batch_size=8, warmup_steps=1, lr=3e-3, prune_every=1,
        corpus=DigitCorpusConfig(n_train=16, n_dev=8, n_test=8, n_test_seen=8,
                                 train_variants=("m1", "f1")),
        model=_TINY_MODEL, sweep_sigmas=(0.2,), sweep_dropouts=(0.2,), n_seeds=1,
        sparsities=(0.0, 0.9), eval_batch_size=32, n_boot=200, flatness_radii=(0.0, 0.2),
        flatness_draws=1, flatness_utterances=8),
    # probes (one seed, dev only) fixed the budget: 400 steps left the dense model at 13-33%
    # WER on its own training utterances; 500-600 steps at batch 16 fit them (1-4%) at
    # 50-55% dev WER, where dropout, weight decay and sigma = 0.1 each lowered dev WER.
    # 70% sparsity is left out at this scale (6 more runs, about 2 CPU minutes); the
    # paper's numbers are at 90%
    tutorial=NoisyTrainingConfig(
        dense_scale="tutorial", corpus=_FEW_VOICES, model=_SMALL_MODEL, steps=500,
        batch_size=16, lr=3e-3, warmup_steps=50, sparsities=(0.0, 0.9),
        sweep_sigmas=(0.05, 0.2, 0.8), sweep_dropouts=(0.1, 0.3, 0.5)),
    full=NoisyTrainingConfig(
        dense_scale="full", start="finetune", steps=30_000, batch_size=512, lr=5e-4,
        warmup_steps=2000, prune_every=500, held_out_snr_db=None, dropout=0.1,
        weight_decay=0.01, specaugment=(27, 2, 100, 2), sweep_sigmas=(0.05, 0.1, 0.2),
        sweep_dropouts=(0.2, 0.3, 0.4), flatness_utterances=256),
)


# --- one trained condition, cached ----------------------------------------------------------

def load_run_model(init_artifact: dict[str, Any] | None, run: dict[str, Any],
                   config: NoisyTrainingConfig | None = None) -> ASRModel:
    """The trained model of a run (eval mode); a sparse one gets its masks back
    (``W != 0`` on the pruned layers) so perturbations keep pruned weights at zero.
    ``init_artifact``: the dense artifact it was fine-tuned from, or ``None`` (from scratch:
    ``config.model_config``)."""
    if init_artifact is not None:
        model, _ = model_from_artifact(init_artifact)
    else:
        model = ASRModel(config.model_config)
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


def scratch_model(config: NoisyTrainingConfig, train_set, seed: int) -> ASRModel:
    """A freshly initialised recogniser (initialisation from ``seed``), its feature
    normalisation fitted on the training set."""
    from lib.asr.recipes import _cmvn_subset

    _seed_everything(derive_seed(seed, "noisy-training-init"))
    model = ASRModel(config.model_config)
    model.cmvn.fit(_cmvn_subset(train_set, config.recipe, seed))
    return model


def _train_one(config: NoisyTrainingConfig, sparsity: float, sigma: float, seed: int,
               dense: dict[str, Any] | None, device: str = "auto", ckpt_dir=None,
               run_key=None) -> dict[str, Any]:
    """One condition trained on the config's training set (loaded here: one DDP rank)."""
    sets, _ = load_sets(config)
    if dense is not None:
        return finetune(dense, sets["train"], config, sparsity=sparsity, sigma=sigma,
                        seed=seed, device=device, ckpt_dir=ckpt_dir, run_key=run_key)
    return train_noisy(scratch_model(config, sets["train"], seed), sets["train"], config,
                       sparsity=sparsity, sigma=sigma, seed=seed, device=device,
                       ckpt_dir=ckpt_dir, run_key=run_key)


def _run_key(config: NoisyTrainingConfig, sparsity: float, sigma: float,
             seed: int) -> dict[str, Any]:
    """What a run depends on (sweep lists, seed counts and evaluation settings do not)."""
    keep = ("dense_scale", "dense_seed", "start", "corpus", "steps", "batch_size", "lr",
            "warmup_steps", "clip_grad_norm", "weight_decay", "specaugment", "dropout",
            "prune_ramp_fraction", "prune_every", "noise_kind", "held_out_snr_db")
    key = {k: getattr(config, k) for k in keep}
    if sigma > 0:  # the schedule only matters when there is noise
        key.update(noise_schedule=config.noise_schedule, anneal_start=config.anneal_start)
    else:
        key.pop("noise_kind")
    if sparsity == 0:
        key.pop("prune_ramp_fraction"), key.pop("prune_every")
    init = {"recipe": config.recipe} if config.start == "finetune" else \
        {"model": config.model_config, "recipe": config.recipe}
    return {**key, **init, "sparsity": sparsity, "sigma": sigma, "seed": seed}


def _depends_on(config: NoisyTrainingConfig, cache: ArtifactCache) -> list[str]:
    return [dense_asr_key(config.recipe, config.dense_seed, cache)] \
        if config.start == "finetune" else []


def _init_artifact(config: NoisyTrainingConfig, cache: ArtifactCache):
    return dense_asr_artifact(config.recipe, config.dense_seed, cache) \
        if config.start == "finetune" else None


def _build_run(config: NoisyTrainingConfig, sparsity: float, sigma: float, seed: int,
               device: str, cache: ArtifactCache, ckpt_dir: Path,
               run_key: str) -> dict[str, Any]:
    from lib.core.distributed import requested_workers, run_data_parallel

    dense = _init_artifact(config, cache)
    if config.recipe.data == "librispeech":  # full scale: checkpointed, data-parallel
        out = run_data_parallel(_train_one, requested_workers(config.gpus or None), config,
                                sparsity, sigma, seed, dense, "auto", str(ckpt_dir), run_key,
                                workdir=ckpt_dir)
    else:
        out = _train_one(config, sparsity, sigma, seed, dense, device)
    run = {**out, "sparsity": sparsity, "sigma": sigma, "seed": seed,
           "dropout": config.dropout}
    run["measured_sparsity"] = pruned_fraction(load_run_model(dense, run, config))
    return run


def run_artifact(config: NoisyTrainingConfig, *, sparsity: float, sigma: float, seed: int,
                 device: str = "auto", cache: ArtifactCache | None = None) -> dict[str, Any]:
    """One trained condition (state dict, training log, measured sparsity), built once."""
    cache = cache or ArtifactCache()
    return cache.get_or_train(
        "noisy-training-run", _run_key(config, sparsity, sigma, seed),
        lambda ckpt, run: _build_run(config, sparsity, sigma, seed, device, cache, ckpt, run),
        depends_on=_depends_on(config, cache))


def run_is_cached(config: NoisyTrainingConfig, *, sparsity: float, sigma: float, seed: int,
                  cache: ArtifactCache | None = None) -> bool:
    cache = cache or ArtifactCache()
    return cache.contains("noisy-training-run", _run_key(config, sparsity, sigma, seed),
                          code=[run_artifact], depends_on=_depends_on(config, cache))


def utterance_errors(references: Sequence[str], hypotheses: Sequence[str]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per utterance: word edits and reference words (a corpus WER is their sums' ratio)."""
    errors = utterance_word_errors(references, hypotheses)
    return np.asarray(errors, dtype=np.float64), \
        np.asarray([len(r.split()) for r in references], dtype=np.float64)


def run_scores(config: NoisyTrainingConfig, *, sparsity: float, sigma: float, seed: int,
               roles: Sequence[str], device: str = "auto",
               cache: ArtifactCache | None = None) -> dict[str, dict[str, Any]]:
    """``{role: {"wer", "errors", "words"}}`` of a trained condition (greedy decoding;
    cached per role set, so a dev-only sweep run does not decode the test sets)."""
    cache = cache or ArtifactCache()
    splits = eval_split_names(config)
    key = {"run": _run_key(config, sparsity, sigma, seed), "roles": list(roles),
           "eval_batch_size": config.eval_batch_size}

    def build() -> dict[str, Any]:
        trained = run_artifact(config, sparsity=sparsity, sigma=sigma, seed=seed,
                               device=device, cache=cache)
        model = load_run_model(_init_artifact(config, cache), trained, config)
        model.to(select_device(device))
        sets, tokenizer = load_sets(config)
        t0 = time.perf_counter()
        out: dict[str, Any] = {}
        for role in roles:
            data = sets[splits[role]]
            wer, hyps = evaluate_wer(model, data, tokenizer, batch_size=config.eval_batch_size,
                                     return_hypotheses=True)
            errors, words = utterance_errors(data.texts, hyps)
            # tensors, not numpy arrays: the cache loads with torch.load(weights_only=True)
            out[role] = {"wer": wer, "errors": torch.from_numpy(errors),
                         "words": torch.from_numpy(words)}
        return {**out, "eval_seconds": time.perf_counter() - t0}

    return cache.get_or_create("noisy-training-scores", key, build,
                               depends_on=_depends_on(config, cache))


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
        init = _init_artifact(config, cache)
        sets, _ = load_sets(config)
        probe_set = sets["train"].subset(range(min(len(sets["train"]), key["utterances"])))
        t0 = time.perf_counter()
        losses = []
        for sparsity, sigma, s in keys:
            r = run_artifact(config, sparsity=sparsity, sigma=sigma, seed=s, device=device,
                             cache=cache)
            model = load_run_model(init, r, config).to(select_device(device))
            losses.append(flatness_probe(model, probe_set, config.flatness_radii,
                                         key["draws"], derive_seed(config.dense_seed, "probe"),
                                         batch_size=config.eval_batch_size))
        return {"keys": [list(k) for k in keys], "radii": list(config.flatness_radii),
                "loss": torch.stack(losses), "seconds": time.perf_counter() - t0}

    return cache.get_or_create("noisy-training-flatness", key, build,
                               depends_on=_depends_on(config, cache))


# --- the experiment -----------------------------------------------------------------------

def condition_name(sparsity: float, sigma: float, dropout: float = 0.0,
                   base_dropout: float = 0.0) -> str:
    name = "dense" if sparsity == 0 else f"sparse {sparsity:.0%}"
    if sigma > 0:
        name += "+noise"
    if dropout != base_dropout:
        name += f"+dropout {dropout:g}"
    return name


def conditions(config: NoisyTrainingConfig, sigma: float, control_dropout: float | None = None
               ) -> list[tuple[str, float, float, float]]:
    """``(name, sparsity, sigma, dropout)``: plain and noisy at every sparsity, then the
    positive control (dense, the dev-tuned dropout, no noise)."""
    out = [(condition_name(sp, sg), sp, sg, config.dropout)
           for sp in config.sparsities for sg in (0.0, sigma)]
    if control_dropout is not None:
        out.append((condition_name(0.0, 0.0, control_dropout, config.dropout), 0.0, 0.0,
                    control_dropout))
    return out


def _summary(config: NoisyTrainingConfig, trained: dict[str, Any],
             scores: dict[str, Any]) -> dict[str, Any]:
    losses = [h["loss"] for h in trained["history"]]
    window = max(1, len(losses) // 25)
    curve = [float(np.mean(losses[i:i + window])) for i in range(0, len(losses), window)]
    out = {"sparsity": trained["sparsity"], "sigma": trained["sigma"],
           "seed": trained["seed"], "dropout": trained.get("dropout", config.dropout),
           "measured_sparsity": trained["measured_sparsity"],
           "build_seconds": trained["train_seconds"] + scores["eval_seconds"],
           "final_loss": float(np.mean(losses[-max(1, len(losses) // 10):])),
           "loss_curve": curve, "curve_every": window}
    out.update({f"wer_{role}": v["wer"] for role, v in scores.items() if role in
                eval_split_names(config)})
    return out


def run(config: NoisyTrainingConfig, seed: int = 0, *, device: str = "auto",
        cache: ArtifactCache | None = None) -> dict[str, Any]:
    """Everything the chapter shows (each trained model from the artifact cache):

    * ``tuning``: dev WER of the dense model at every dropout (the baseline's tuning, the
      control) and every sigma (noise), seed ``seed``; ``sigma``, ``control_dropout``:
      the dev-best of each;
    * ``runs``: every condition x ``n_seeds`` seeds (summaries: WERs, loss curves);
    * ``comparisons``: the paired intervals and verdicts (``compare``);
    * ``flatness``: the probe on every plain and noisy run.
    """
    cache = cache or ArtifactCache()
    roles = list(eval_split_names(config))

    def get(sparsity, sigma, s, cfg, which):
        kw = {"sparsity": sparsity, "sigma": sigma, "seed": s, "device": device,
              "cache": cache}
        return cfg, run_artifact(cfg, **kw), run_scores(cfg, roles=which, **kw)

    tuning = []
    for p in (config.dropout, *config.sweep_dropouts[:limit_steps(len(config.sweep_dropouts))]):
        cfg = replace(config, dropout=p)
        tuning.append({"knob": "dropout", **_summary(*get(0.0, 0.0, seed, cfg, ["dev"]))})
    for s in config.sweep_sigmas[:limit_steps(len(config.sweep_sigmas))]:
        tuning.append({"knob": "sigma", **_summary(*get(0.0, s, seed, config, ["dev"]))})
    noisy = [r for r in tuning if r["knob"] == "sigma"]
    sigma = config.sigma or min(noisy, key=lambda r: r["wer_dev"])["sigma"]
    dropped = [r for r in tuning if r["knob"] == "dropout" and r["dropout"] != config.dropout]
    control_dropout = min(dropped, key=lambda r: r["wer_dev"])["dropout"]
    seeds = [seed + i for i in range(limit_steps(config.n_seeds))]
    rows, scores = [], {}
    for name, sparsity, sig, p in conditions(config, sigma, control_dropout):
        cfg = replace(config, dropout=p)
        for s in seeds:
            c, trained, sc = get(sparsity, sig, s, cfg, roles)
            rows.append({"condition": name, **_summary(c, trained, sc)})
            scores[(name, s)] = sc
    flat_keys = [(sp, sg, s) for _, sp, sg, p in conditions(config, sigma) for s in seeds]
    flat = flatness_artifact(config, flat_keys, device=device, cache=cache)
    comparisons = compare(config, scores, seeds, sigma, control_dropout)
    return {"tuning": tuning, "sigma": sigma, "control_dropout": control_dropout,
            "runs": rows, "comparisons": comparisons, "flatness": flat, "seeds": seeds,
            "roles": eval_split_names(config),
            "build_seconds": sum(r["build_seconds"] for r in rows) + sum(
                r["build_seconds"] for r in tuning) + flat["seconds"]}


# --- paired comparisons and verdicts ------------------------------------------------------

def paired_relative_wer(method: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]],
                        role: str, *, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Relative WER change ``(WER_method - WER_base) / WER_base`` with its 95% interval:
    paired bootstrap over seeds (``method[i]`` and ``baseline[i]`` share seed ``i``) and
    utterances (each replicate scores both on the same draws), WER as errors / words."""
    a = np.stack([np.asarray(m[role]["errors"]) for m in method])
    b = np.stack([np.asarray(m[role]["errors"]) for m in baseline])
    return paired_bootstrap(a, b, denominators=np.asarray(baseline[0][role]["words"]),
                            relative=True, n_boot=n_boot, seed=seed)


def judge(interval: Interval, paper_effect: float | None) -> str:
    """``lib.core.stats.verdict`` against the paper's effect; without one (the control, a
    level the paper gives no number for), "reproduced" means "an effect in the expected
    direction is detected", and else "inconclusive at this scale"."""
    if paper_effect is not None:
        return verdict(interval, paper_effect)
    return "detected" if interval.hi < 0 else INCONCLUSIVE


def paper_effect(config: NoisyTrainingConfig, role: str) -> float | None:
    """The paper's signed relative WER change for the analogue of ``role`` (at 90%)."""
    analogue = role_labels(config)[role][1]
    return -PAPER_IMPROVEMENT_90[analogue] if analogue in PAPER_IMPROVEMENT_90 else None


def compare(config: NoisyTrainingConfig, scores: dict[tuple[str, int], Any],
            seeds: Sequence[int], sigma: float, control_dropout: float) -> list[dict[str, Any]]:
    """One row per comparison and test set: noise vs plain at every sparsity (judged
    against the paper's 90% effect: the paper says "consistent" for every level), and the
    positive control, dropout vs plain (dense); the estimate, interval, half width (the
    smallest effect this experiment resolves) and verdict."""
    pairs = [(f"noise vs plain, {condition_name(sp, 0.0)}", condition_name(sp, sigma),
              condition_name(sp, 0.0), sp) for sp in config.sparsities]
    pairs.append(("control: dropout vs plain, dense",
                  condition_name(0.0, 0.0, control_dropout, config.dropout), "dense", None))
    out = []
    for label, method, base, sparsity in pairs:
        for role in eval_split_names(config):
            if role in ("dev", "train"):
                continue
            iv = paired_relative_wer([scores[(method, s)] for s in seeds],
                                     [scores[(base, s)] for s in seeds], role,
                                     n_boot=config.n_boot, seed=derive_seed(0, label, role))
            effect = paper_effect(config, role) if sparsity is not None else None
            out.append({"comparison": label, "role": role, "sparsity": sparsity,
                        "method": method, "baseline": base, "paper_effect": effect,
                        "estimate": iv.estimate, "lo": iv.lo, "hi": iv.hi,
                        "half_width": iv.half_width, "n_seeds": iv.n_seeds,
                        "n_items": iv.n_items, "verdict": judge(iv, effect)})
    return gate_on_control(out)


#: The test set on which the positive control must be detected (the chapter's definition:
#: dropout lowers the unseen-voice WER).
CONTROL_ROLE = "unseen"
CONTROL_FAILED = "positive control not detected"


def gate_on_control(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Noise verdicts stand only where the set-up detects a known regulariser: when the
    control's verdict on ``CONTROL_ROLE`` is not "detected", every noise row's verdict
    becomes "inconclusive at this scale" (the interval's own verdict kept as
    ``ungated_verdict``), since a set-up that cannot show dropout's gain cannot show that
    noise has none. Each row gets ``control``: the control's verdict it was gated on."""
    control = [r for r in rows if r["sparsity"] is None and r["role"] == CONTROL_ROLE]
    if len(control) != 1:
        raise ValueError(f"expected one control row on {CONTROL_ROLE!r}, got {len(control)}")
    passed = control[0]["verdict"] == "detected"
    out = []
    for r in rows:
        r = dict(r, control=control[0]["verdict"], ungated_verdict=r["verdict"])
        if r["sparsity"] is not None and not passed:
            r["verdict"] = INCONCLUSIVE
        out.append(r)
    return out


def metric_prefix(row: dict[str, Any]) -> str:
    """Where a comparison's interval is recorded (``CLAIMS`` read the 90% ones)."""
    if row["sparsity"] is None:
        return f"relwer_dropout_vs_plain_s0_{row['role']}"
    return f"relwer_noise_vs_plain_s{round(100 * row['sparsity'])}_{row['role']}"


def comparison_metrics(comparisons: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Every comparison's interval as record metrics (``Interval.as_metrics``)."""
    out: dict[str, float] = {}
    for r in comparisons:
        iv = Interval(r["estimate"], r["lo"], r["hi"], 0.95, r["n_seeds"], r["n_items"])
        out.update(iv.as_metrics(metric_prefix(r)))
    return out


def comparison_table(comparisons: Sequence[dict[str, Any]], config: NoisyTrainingConfig):
    """The comparisons as a table (relative WER change in %, negative: the method helps);
    "interval alone" is the verdict before ``gate_on_control``."""
    import pandas as pd

    labels = {role: text for role, (text, _) in role_labels(config).items()}
    rows = [{"comparison": r["comparison"], "test set": labels[r["role"]],
             "rel. WER change (%)": 100 * r["estimate"],
             "95% interval (%)": f"[{100 * r['lo']:+.1f}, {100 * r['hi']:+.1f}]",
             "resolves (+-%)": 100 * r["half_width"],
             "paper (%)": math.nan if r["paper_effect"] is None else 100 * r["paper_effect"],
             "verdict": r["verdict"],
             "interval alone": r.get("ungated_verdict", r["verdict"])} for r in comparisons]
    return pd.DataFrame(rows).set_index(["comparison", "test set"])


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
        rec = {"condition": name, "seeds": len(group),
               "sparsity": float(group["measured_sparsity"].mean())}
        for role in roles:
            v = 100 * group[f"wer_{role}"].to_numpy()
            rec[f"{role} mean"] = v.mean()
            rec[f"{role} std"] = v.std(ddof=1) if len(v) > 1 else math.nan
            rec[f"{role} per seed"] = " / ".join(f"{x:.1f}" for x in v)
        out.append(rec)
    return pd.DataFrame(out).set_index("condition")


def flatness_rise(flat: dict[str, Any]) -> tuple[np.ndarray, dict[tuple, np.ndarray]]:
    """``(radii, {(sparsity, sigma, seed): L(W + r std z) - L(W)})``, the rise averaged over
    the probe's random directions."""
    radii = np.asarray(flat["radii"], dtype=float)
    loss = flat["loss"].numpy()                        # (runs, radii, draws)
    rise = (loss - loss[:, :1, :]).mean(axis=2)        # (runs, radii)
    return radii, {tuple(k): rise[i] for i, k in enumerate(flat["keys"])}


def flatness_curves(flat: dict[str, Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per probed condition: the loss rise against the radius, as ``(radii, mean over
    seeds, min over seeds, max over seeds)``."""
    radii, rise = flatness_rise(flat)
    curves: dict[str, Any] = {}
    for r in rows:
        k = (r["sparsity"], r["sigma"], r["seed"])
        if k in rise and "dropout" not in r["condition"]:
            curves.setdefault(r["condition"], []).append(rise[k])
    return {name: (radii, np.mean(v, 0), np.min(v, 0), np.max(v, 0))
            for name, v in curves.items()}


def flatness_verdicts(curves: dict[str, Any], sparsities: Sequence[float]) -> dict[str, str]:
    """Per sparsity: "flatter" ("sharper") when every noisy seed's rise at the largest
    radius lies below (above) every plain seed's, else "same"."""
    out = {}
    for sp in sparsities:
        plain, noisy = curves[condition_name(sp, 0.0)], curves[condition_name(sp, 1.0)]
        out[condition_name(sp, 0.0)] = ("flatter" if noisy[3][-1] < plain[2][-1] else
                                        "sharper" if noisy[2][-1] > plain[3][-1] else "same")
    return out


def headline(comparisons: Sequence[dict[str, Any]]) -> dict[str, str]:
    """``{comparison: "verdict on test set; ..."}``, one line per comparison."""
    out: dict[str, list[str]] = {}
    for r in comparisons:
        out.setdefault(r["comparison"], []).append(
            f"{r['verdict']} on {r['role']} ({100 * r['estimate']:+.1f}% "
            f"[{100 * r['lo']:+.1f}, {100 * r['hi']:+.1f}])")
    return {k: "; ".join(v) for k, v in out.items()}


# --- claims ------------------------------------------------------------------------------------
CONTROL_PREFIX = f"relwer_dropout_vs_plain_s0_{CONTROL_ROLE}"


def control_gated(claim: Claim) -> Claim:
    """``claim``, judged "inconclusive at this scale" unless the record's positive control
    (``CONTROL_PREFIX``: dropout vs plain) lies wholly below zero (``gate_on_control``)."""
    return claim.gated(tuple(f"{CONTROL_PREFIX}_{k}" for k in ("estimate", "lo", "hi")),
                       lambda m: Interval.from_metrics(m, CONTROL_PREFIX).hi < 0,
                       lambda m: f"{CONTROL_FAILED} (its interval reaches zero)")


CLAIMS = [
    control_gated(Claim.interval(
        "noisy_training", "sparse-unseen",
        "Weight noise during training lowers the WER of a 90%-sparse recogniser on "
        "unseen voices (the analogue of test-clean)",
        paper="14% relative (test-clean)",
        prefix="relwer_noise_vs_plain_s90_unseen", paper_effect=-0.14,
        unit="relative WER change", percent=True)),
    control_gated(Claim.interval(
        "noisy_training", "sparse-unseen-noisy",
        "Weight noise during training lowers the WER of a 90%-sparse recogniser on "
        "unseen voices in unseen noise (the analogue of test-other)",
        paper="12% relative (test-other)",
        prefix="relwer_noise_vs_plain_s90_unseen_noisy", paper_effect=-0.12,
        unit="relative WER change", percent=True)),
]

__all__ = ["CLAIMS", "CONFIGS", "CONTROL_FAILED", "CONTROL_PREFIX", "CONTROL_ROLE", "STARTS",
           "NoisyTrainingConfig", "compare", "comparison_metrics", "comparison_table",
           "condition_name", "conditions", "control_gated", "flatness_artifact",
           "flatness_curves", "flatness_probe", "flatness_rise", "flatness_verdicts",
           "gate_on_control", "headline", "judge", "load_run_model", "mean_loss",
           "metric_prefix", "paired_relative_wer", "paper_effect", "pruned_fraction",
           "relative_improvement", "run", "run_artifact", "run_is_cached", "run_scores",
           "scratch_model", "summary_table", "utterance_errors"]
