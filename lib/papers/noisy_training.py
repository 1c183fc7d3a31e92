"""Noisy training improves E2E ASR for the edge (Wang, Shangguan, Yang et al., 2021).

Problem. Streaming end-to-end recognisers that run on a device are small, often pruned,
and prone to overfit their training data: they lose accuracy on unseen speakers and
conditions. The paper adds *random noise to the parameters* during training: the model is
pushed towards regions of weight space where the loss stays low when the weights move (a
"smoother" model, An 1996), which it finds generalises better. It reports consistent WER
reductions for dense and sparse Emformer RNN-T, and 12% (test-other) / 14% (test-clean)
relative at 90% sparsity on LibriSpeech.

One step of noisy training (``noisy_training_step``), for each weight matrix ``W`` with
pruning mask ``M`` (all ones when dense):

1. draw the perturbation (``sample_weight_noise``)
   additive:        ``eps ~ N(0, (sigma_t * std(W))^2)`` elementwise,
   multiplicative:  ``eps = sigma_t * W * z``, ``z ~ N(0, 1)`` elementwise;
   ``std(W)`` over the weights the mask keeps, ``sigma_t`` from the schedule
   (``noise_scale``);
2. forward and backward at the noisy point (``perturbed_weights``):
   ``g = grad_W L((W + eps) * M; batch)`` (pruned weights stay exactly zero, and their
   gradient is zero);
3. restore ``W`` exactly (a saved copy, not ``W + eps - eps``);
4. ``W <- optimizer(W, g)``: the update applies the noisy point's gradient to the clean
   weights, so the noise never accumulates in ``W``.

Sparse models come from gradual magnitude pruning (Zhu & Gupta 2017): the sparsity
follows the cubic schedule ``s_t = s_f (1 - (1 - t / t_ramp)^3)`` (``lib.sparse``), and
every ``prune_every`` steps each pruned matrix keeps its ``(1 - s_t) n`` largest
``|W * M|`` (``magnitude_prune``), so a pruned weight stays pruned.

The flatness probe (``flatness_probe``) measures the "smoother model" claim directly:
the training loss at ``W + r * std(W) * z`` along a few fixed random directions ``z``,
as a function of the radius ``r``; a flatter minimum loses less.

**Our reading.** The paper publishes no code and, beyond "random noise in the parameter
space during training", none of the following; each is a knob of ``NoisyTrainingConfig``:

* Gaussian, zero-mean noise, drawn afresh every step (one draw per step for the whole
  batch), on every weight matrix (tensors with two or more dimensions: linear, embedding
  and LSTM-gate weights), never on biases or normalisation scales;
* additive noise scaled by each tensor's standard deviation (``noise_kind``; the
  multiplicative variant scales by each weight's own magnitude);
* a constant scale (``noise_schedule``: "linear" or "cosine" anneal it to 0 from
  ``anneal_start``); ``sigma`` chosen by dev-set WER from ``sweep_sigmas`` unless set;
* the gradient at the noisy weights updates the clean weights (steps 2-4 above);
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from lib.asr import (
    DENSE_RECIPES,
    ASRModel,
    BucketBatches,
    StepBatchLoader,
    TrainConfig,
    UtteranceSet,
    add_noise,
    dense_asr_artifact,
    dense_asr_key,
    digit_corpus,
    evaluate_wer,
    load_data,
    log_mel,
    make_optimizer,
    make_specaugment,
    model_from_artifact,
)
from lib.asr.model import cpu_state_dict, training_device
from lib.core import (
    ArtifactCache,
    ScaleConfigs,
    derive_seed,
    make_generator,
    seed_everything,
    select_device,
)
from lib.core import train_loop as core_train_loop
from lib.core.claims import Claim
from lib.sparse import attach_mask, bake, cubic_sparsity, get_mask, magnitude_mask

NOISE_KINDS = ("additive", "multiplicative")
NOISE_SCHEDULES = ("constant", "linear", "cosine")


# --- the noise -------------------------------------------------------------------------------

def noise_scale(step: int, total_steps: int, sigma: float, schedule: str = "constant",
                anneal_start: float = 0.0) -> float:
    """``sigma_t``: constant, or annealed from ``sigma`` to 0 between ``t_0 = anneal_start *
    T`` and ``T``: linear ``sigma (1 - p)``, cosine ``sigma (1 + cos(pi p)) / 2`` with
    ``p = clip((t - t_0) / (T - t_0), 0, 1)``."""
    if schedule not in NOISE_SCHEDULES:
        raise ValueError(f"unknown noise schedule {schedule!r}; valid: {NOISE_SCHEDULES}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if total_steps < 1 or not 0.0 <= anneal_start < 1.0:
        raise ValueError(f"need total_steps >= 1 and 0 <= anneal_start < 1, got "
                         f"{total_steps}, {anneal_start}")
    if schedule == "constant":
        return float(sigma)
    start = anneal_start * total_steps
    p = min(1.0, max(0.0, (step - start) / (total_steps - start)))
    if schedule == "linear":
        return float(sigma * (1.0 - p))
    return float(sigma * 0.5 * (1.0 + math.cos(math.pi * p)))


class WeightMatrix(NamedTuple):
    """A noised tensor: its name, the parameter itself (``original`` under a mask), and the
    module and attribute where a pruning mask would sit."""

    name: str
    param: nn.Parameter
    module: nn.Module
    attr: str


def weight_matrices(model: nn.Module) -> list[WeightMatrix]:
    """Every parameter with two or more dimensions (weight matrices, embeddings, conv
    kernels), in module order; biases and normalisation scales (1-D) are left out. A masked
    weight (``lib.sparse.attach_mask``) is found through its ``original``."""
    out: list[WeightMatrix] = []
    for mod_name, module in model.named_modules():
        if isinstance(module, parametrize.ParametrizationList):
            continue  # reached through the module that owns it, below
        if parametrize.is_parametrized(module):
            for attr, plist in module.parametrizations.items():
                if plist.original.ndim >= 2:
                    out.append(WeightMatrix(f"{mod_name}.{attr}", plist.original, module, attr))
        for attr, p in module.named_parameters(recurse=False):
            if p.ndim >= 2:
                out.append(WeightMatrix(f"{mod_name}.{attr}", p, module, attr))
    return out


@torch.no_grad()
def sample_weight_noise(weight: torch.Tensor, sigma: float, kind: str,
                        generator: torch.Generator,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """Step 1: ``eps = sigma * std(W_kept) * z`` (additive) or ``sigma * W * z``
    (multiplicative), ``z ~ N(0, I)`` from ``generator``; zero where ``mask`` is 0."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; valid: {NOISE_KINDS}")
    w = weight.detach()
    z = torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype)
    if kind == "additive":
        kept = w[mask.bool()] if mask is not None else w
        std = kept.std() if kept.numel() > 1 else w.new_zeros(())
        eps = (sigma * std) * z
    else:
        eps = sigma * w * z
    return eps * mask.to(w.dtype) if mask is not None else eps


@contextmanager
def perturbed_weights(model: nn.Module, sigma: float, *, kind: str = "additive",
                      generator: torch.Generator) -> Iterator[list[WeightMatrix]]:
    """Steps 1-3: inside the block every weight matrix holds ``W + eps`` (``eps`` zero on
    pruned entries); on exit, normal or not, each is restored bit for bit from a copy."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    targets = weight_matrices(model) if sigma > 0 else []
    saved: list[torch.Tensor] = []
    try:
        with torch.no_grad():
            for t in targets:
                eps = sample_weight_noise(t.param, sigma, kind, generator,
                                          get_mask(t.module, t.attr))
                saved.append(t.param.detach().clone())
                t.param.add_(eps)
        yield targets
    finally:
        with torch.no_grad():
            for t, clean in zip(targets, saved, strict=False):
                t.param.copy_(clean)


def noisy_training_step(model: nn.Module, loss_fn: Callable[[], torch.Tensor],
                        optimizer: torch.optim.Optimizer, *, sigma: float,
                        generator: torch.Generator, kind: str = "additive",
                        clip_grad_norm: float | None = 10.0) -> dict[str, float]:
    """One update of noisy training around any ``loss_fn`` (a closure computing the loss
    of the current batch): gradient at ``(W + eps) * M`` (steps 1-2), ``W`` restored
    (step 3), then clipping and the optimizer step on the clean ``W`` (step 4)."""
    optimizer.zero_grad(set_to_none=True)
    with perturbed_weights(model, sigma, kind=kind, generator=generator):
        loss = loss_fn()
        loss.backward()
    logs = {"loss": float(loss.detach())}
    if clip_grad_norm is not None:
        logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                                 clip_grad_norm))
    optimizer.step()
    return logs


# --- gradual magnitude pruning ---------------------------------------------------------------

def encoder_matrices(model: ASRModel) -> list[nn.Linear]:
    """The linear layers of the Emformer encoder's layers (what is pruned)."""
    return [m for layer in model.rnnt.transcriber.transformer.emformer_layers
            for m in layer.modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def magnitude_prune(layers: Sequence[nn.Module], sparsity: float) -> None:
    """Mask each layer to keep its ``(1 - sparsity) n`` largest ``|W * M|`` (a weight pruned
    before has magnitude 0 and stays pruned while the sparsity grows)."""
    for m in layers:
        mask = get_mask(m)
        w = m.parametrizations.weight.original if mask is not None else m.weight
        attach_mask(m, magnitude_mask(w * mask if mask is not None else w, sparsity))


# --- config ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class NoisyTrainingConfig:
    """Every knob of the chapter (see the module docstring for the "our reading" ones)."""

    dense_scale: str                 # which shared dense recogniser (lib.asr.DENSE_RECIPES)
    dense_seed: int = 0              # its seed (also the corpus seed)
    # fine-tuning (all conditions alike)
    steps: int = 300
    batch_size: int = 16
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
        return DENSE_RECIPES[self.dense_scale]

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


# --- data: the recipe's sets plus the held-out noise condition -------------------------------

def eval_split_names(config: NoisyTrainingConfig) -> dict[str, str]:
    """``{role: split}``. Roles: ``dev`` (picks sigma), ``seen`` (digits only: new utterances
    of the training voices), ``unseen`` (new speakers: digits ``test``, LibriSpeech
    test-clean) and ``unseen_noisy`` (new speakers in harder conditions: the digit test
    voices with extra noise, LibriSpeech test-other)."""
    if config.recipe.data == "digits":
        names = {"dev": "dev", "seen": "test_seen", "unseen": "test"}
        if config.held_out_snr_db is not None:
            names["unseen_noisy"] = "test_noisy"
        return names
    return {"dev": config.recipe.dev_splits[0], "unseen": "test-clean",
            "unseen_noisy": "test-other"}


#: The paper's relative WER improvements from noise at 90% sparsity (abstract).
PAPER_IMPROVEMENT_90 = {"test-other": 0.12, "test-clean": 0.14}


def role_labels(config: NoisyTrainingConfig) -> dict[str, tuple[str, str]]:
    """``{role: (label, the paper's analogous LibriSpeech set or "-")}``."""
    if config.recipe.data == "digits":
        snr = config.held_out_snr_db
        return {"dev": ("dev (unseen voices)", "-"), "seen": ("seen voices", "-"),
                "unseen": ("unseen voices", "test-clean"),
                "unseen_noisy": (f"unseen voices + {snr:g} dB noise" if snr is not None
                                 else "-", "test-other")}
    return {"dev": (config.recipe.dev_splits[0], "-"), "unseen": ("test-clean", "test-clean"),
            "unseen_noisy": ("test-other", "test-other")}


def held_out_noise_set(recipe, seed: int, tokenizer, snr_db: float,
                       split: str = "test") -> UtteranceSet:
    """``split`` of the digit corpus with extra white or pink noise (alternating) at
    ``snr_db``, below the training corpus's lowest SNR: unseen voices in unseen noise."""
    from lib.asr.corpus import NOISE_KINDS as COLOURS

    corpus = digit_corpus(recipe.corpus, seed)
    data = corpus[split]
    feats = []
    for i, audio in enumerate(data["audio"]):
        rng = np.random.default_rng(derive_seed(seed, "held-out-noise", split, i))
        noisy = add_noise(audio.numpy() / 32768.0, snr_db, COLOURS[i % len(COLOURS)], rng)
        feats.append(log_mel(torch.from_numpy(np.clip(noisy, -1.0, 1.0)).float(),
                             corpus["sample_rate"]))
    return UtteranceSet(feats, data["text"], tokenizer, data.get("speaker"))


@lru_cache(maxsize=2)
def load_sets(config: NoisyTrainingConfig) -> tuple[dict[str, Any], Any]:
    """``({split: set}, tokenizer)`` for fine-tuning and evaluation (built once a process)."""
    sets, tokenizer = load_data(config.recipe, config.dense_seed)
    if config.recipe.data == "digits" and config.held_out_snr_db is not None:
        sets["test_noisy"] = held_out_noise_set(config.recipe, config.dense_seed, tokenizer,
                                                config.held_out_snr_db)
    return sets, tokenizer


# --- fine-tuning one condition ---------------------------------------------------------------

def finetune(dense_artifact: dict[str, Any], train_set, config: NoisyTrainingConfig, *,
             sparsity: float, sigma: float, seed: int, device: str = "auto",
             ckpt_dir: str | Path | None = None, run_key: str | None = None,
             show_progress: bool | None = None) -> dict[str, Any]:
    """Fine-tune the dense recogniser for ``config.steps`` steps, pruning to ``sparsity``
    (0: stays dense) and with weight noise ``sigma`` (0: plain training). Returns the baked
    state dict and the training log."""
    from lib.core.distributed import rank_and_world, wrap_ddp

    seed_everything(seed)
    train_cfg = config.finetune_config()
    model, _ = model_from_artifact(dense_artifact)
    model.specaugment = make_specaugment(train_cfg)
    rank, world = rank_and_world()
    # under DDP each rank takes its own GPU (training_device); alone, the chosen device
    dev = training_device() if world > 1 else torch.device(select_device(device))
    model.to(dev)
    layers = encoder_matrices(model) if sparsity > 0 else []
    for m in layers:  # masks before the optimizer, which must see the masked parameters
        attach_mask(m, torch.ones_like(m.weight))
    opt, sched = make_optimizer(model, train_cfg)
    # this rank's shard of each step's batch; LibriSpeech: workers read the next ones ahead
    loader = StepBatchLoader(train_set, BucketBatches(train_set.lengths(), config.batch_size,
                                                      derive_seed(seed, "noisy-finetune")),
                             config.steps, rank=rank, world=world,
                             num_workers=train_cfg.num_workers)
    trainable = wrap_ddp(model)
    ramp_end = max(1, int(round(config.prune_ramp_fraction * config.steps)))

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        s_t = cubic_sparsity(step, sparsity, 0, ramp_end) if layers else 0.0
        if layers and (step % config.prune_every == 0 or step == ramp_end):
            magnitude_prune(layers, s_t)
        batch = loader.get(step).to(dev)
        sigma_t = noise_scale(step, config.steps, sigma, config.noise_schedule,
                              config.anneal_start)
        # the same draw on every rank: the generator depends only on (seed, step)
        g = make_generator(derive_seed(seed, "weight-noise", step), dev)
        logs = noisy_training_step(model, lambda: trainable(batch), opt, sigma=sigma_t,
                                   generator=g, kind=config.noise_kind,
                                   clip_grad_norm=config.clip_grad_norm)
        sched.step()
        return {**logs, "sigma": sigma_t, "sparsity": s_t}

    result = core_train_loop(step_fn, config.steps,
                             state={"model": model, "opt": opt, "sched": sched},
                             ckpt_dir=ckpt_dir, run_key=run_key,
                             ckpt_every=max(1, config.steps // 20) if ckpt_dir else 0,
                             desc=f"{'sparse' if sparsity else 'dense'} sigma={sigma:g}",
                             show_progress=show_progress)
    if layers:
        magnitude_prune(layers, sparsity)  # exactly the target at the end
    bake(model)
    return {"state_dict": cpu_state_dict(model), "history": result.history,
            "train_seconds": result.wall_time_s, "steps": result.steps}


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


# --- the flatness probe ----------------------------------------------------------------------

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


# --- the experiment --------------------------------------------------------------------------

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
             for s in (0.0, *config.sweep_sigmas)]
    if config.sigma is not None:
        sigma = config.sigma
    else:
        noisy = [r for r in sweep if r["sigma"] > 0]
        sigma = min(noisy, key=lambda r: r["wer_dev"])["sigma"]
    seeds = [seed + i for i in range(config.n_seeds)]
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


def dense_start_artifact(config: NoisyTrainingConfig, *, device: str = "auto",
                         cache: ArtifactCache | None = None) -> dict[str, Any]:
    """WERs (by role) of the shared dense model every run starts from (cached)."""
    cache = cache or ArtifactCache()
    key = {"recipe": config.recipe, "dense_seed": config.dense_seed,
           "held_out_snr_db": config.held_out_snr_db, "eval_batch_size": config.eval_batch_size}

    def build() -> dict[str, Any]:
        dense = dense_asr_artifact(config.recipe, config.dense_seed, cache)
        sets, tokenizer = load_sets(config)
        model, _ = model_from_artifact(dense)
        t0 = time.perf_counter()
        wer = {role: evaluate_wer(model.to(select_device(device)), sets[split], tokenizer,
                                  batch_size=config.eval_batch_size)
               for role, split in eval_split_names(config).items()}
        return {"wer": wer, "seconds": time.perf_counter() - t0}

    return cache.get_or_create("noisy-training-dense-start", key, build, depends_on=[
        dense_asr_key(config.recipe, config.dense_seed, cache)])


def flatness_artifact(config: NoisyTrainingConfig, keys: Sequence[tuple[float, float, int]],
                      *, device: str = "auto",
                      cache: ArtifactCache | None = None) -> dict[str, Any]:
    """The flatness probe of the runs ``keys = [(sparsity, sigma, seed), ...]`` on the
    first ``flatness_utterances`` training utterances (cached)."""
    cache = cache or ArtifactCache()
    key = {"runs": [_run_key(config, *k) for k in keys], "radii": config.flatness_radii,
           "draws": config.flatness_draws, "utterances": config.flatness_utterances}

    def build() -> dict[str, Any]:
        dense = dense_asr_artifact(config.recipe, config.dense_seed, cache)
        sets, _ = load_sets(config)
        probe_set = sets["train"].subset(range(min(len(sets["train"]),
                                                   config.flatness_utterances)))
        t0 = time.perf_counter()
        losses = []
        for sparsity, sigma, s in keys:
            r = run_artifact(config, sparsity=sparsity, sigma=sigma, seed=s, device=device,
                             cache=cache)
            model = load_run_model(dense, r).to(select_device(device))
            losses.append(flatness_probe(model, probe_set, config.flatness_radii,
                                         config.flatness_draws,
                                         derive_seed(config.dense_seed, "probe"),
                                         batch_size=config.eval_batch_size))
        return {"keys": [list(k) for k in keys], "radii": list(config.flatness_radii),
                "loss": torch.stack(losses), "seconds": time.perf_counter() - t0}

    return cache.get_or_create("noisy-training-flatness", key, build, depends_on=[
        dense_asr_key(config.recipe, config.dense_seed, cache)])


# --- numbers for the chapter -----------------------------------------------------------------

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


__all__ = ["CONFIGS", "NOISE_KINDS", "NOISE_SCHEDULES", "PAPER_IMPROVEMENT_90",
           "NoisyTrainingConfig", "WeightMatrix", "conditions", "dense_start_artifact",
           "effect_verdict", "encoder_matrices", "eval_split_names", "finetune",
           "flatness_artifact", "flatness_curves", "flatness_probe", "flatness_rise",
           "held_out_noise_set", "improvements", "load_run_model", "load_sets",
           "magnitude_prune", "mean_loss", "noise_scale", "noisy_training_step",
           "perturbed_weights", "relative_improvement", "role_labels", "run", "run_artifact",
           "run_is_cached", "sample_weight_noise", "summary_table", "weight_matrices"]


# --- claims ------------------------------------------------------------------------------------
CLAIMS = [
    Claim.interval("noisy_training", "sparse-unseen",
                   "Weight noise during training lowers the WER of a 90%-sparse recogniser on "
                   "unseen data", paper="12% (test-other), 14% (test-clean) relative",
                   prefix="relwer_noise_vs_plain_s90_unseen", paper_effect=-0.12,
                   unit="relative WER change", percent=True),
]
#: Full scale trains data-parallel (``--gpus N``).
DATA_PARALLEL = True
