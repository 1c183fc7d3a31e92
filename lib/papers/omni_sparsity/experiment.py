"""Omni-sparsity, the experiment: configs, the individually pruned baseline, evaluation of
every sparsity level, the budgeted search, training costs and the claim.

An on-device recogniser must fit many size budgets (phones, watches, ...). Pruning one model
per budget costs one training run per budget; the supernet (``method.py``) trains one set
of weights for all of them. The paper reports its sub-networks beating individually pruned
models by 2%-6.6% relative WER on LibriSpeech test-other, for the training cost of about one
model.

The baseline (``gradual_prune``) prunes one model per sparsity (gradual magnitude pruning
with the cubic schedule, masks recomputed every ``prune_every`` steps, pruned weights stay
pruned), each from the same dense model. The search (``search_for_budget``) evolves
per-layer sparsity vectors under a parameter budget, scoring each by its dev-set fitness
through the supernet.

**Our reading** (the paper publishes neither code nor these details; each is a knob of
``OmniSparsityConfig``): unstructured magnitude masks per weight matrix, nested across
levels; the Emformer layers' weight matrices are pruned (``prune_scope``), one gene per
weight matrix (``granularity``), choices ``{0, 0.1, ..., 0.9}``. Each step trains distinct
members, each at ONE sparsity for all its matrices (``sampling="uniform"``): the dense
one, the sparsest allowed and ``n_random`` further levels drawn without replacement from
the reported ``levels`` (``member_levels``), optionally jittered per layer
(``layer_jitter``), so every reported level is trained as itself (the earlier reading drew
every matrix's sparsity independently: ``sampling="per-layer"``, whose members average near
45% and never train the uniform 70% or 90% sub-networks). In-place distillation from the
dense member (BigNAS) is the ``distill`` knob. All members of a step see the same
augmented batch; gradients are averaged, one optimizer step; masks recomputed every step.
Both approaches start from the same dense model (``lib.asr.dense_asr``, ``task.py``), use
the same optimiser, learning rate and schedule (warm-up, then constant), and are compared
at equal *compute* in forward/backward passes: each pruned model trains ``pruned_steps``
steps (its dev loss recorded, to show it plateaued); the supernet runs until it has spent
the passes of all pruned models together, and its snapshot at the passes of ONE pruned
model is the paper's cost claim. The search scores candidates by their dev-set RNN-T loss
(``search_metric``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from lib.asr import (
    ASRModel,
    BucketBatches,
    StepBatchLoader,
    count_parameters,
    dense_asr_key,
    dense_recipe,
    evaluate_wer,
    make_optimizer,
    model_from_artifact,
    paired_bootstrap,
    utterance_word_errors,
)
from lib.asr.model import cpu_state_dict, training_device
from lib.core import ArtifactCache, ScaleConfigs, derive_seed, make_generator, seed_everything
from lib.core import train_loop as core_train_loop
from lib.core.claims import Claim
from lib.core.limits import limit_steps
from lib.sparse import cubic_sparsity

from .method import (
    SPARSITY_CHOICES,
    apply_subnet,
    attach_dense_masks,
    evolutionary_search,
    finetune_train_config,
    prepare_model,
    sample_subnets,
    subnet_size,
    supernet_budget_steps,
    train_supernet,
    weight_groups,
)
from .task import dense_and_data, split_names


@dataclass(frozen=True)
class OmniSparsityConfig:
    """Every knob of the chapter (see the module docstring for the "our reading" ones)."""

    dense_scale: str                 # which shared dense recogniser (lib.asr.DENSE_RECIPES)
    levels: tuple[float, ...] = (0.0, 0.5, 0.7, 0.9)  # sparsities compared
    sparsity_choices: tuple[float, ...] = SPARSITY_CHOICES
    prune_scope: str = "encoder"     # "encoder": Emformer layers; "encoder+predictor"
    granularity: str = "linear"      # one sparsity per "linear" layer or per Emformer "block"
    # supernet training
    supernet_steps: int = 0          # steps of the ramp's reference run (0: one pruned
    #                                  model's passes / members a step)
    n_random: int = 2
    sandwich: bool = True            # also train the dense and the sparsest sub-network
    sampling: str = "uniform"        # "uniform": one sparsity per member; "per-layer"
    member_levels: str = "levels"    # random members' levels: the reported "levels" or
    #                                  every "choices"
    layer_jitter: float = 0.0        # probability a gene of a random member moves one choice
    distill: float = 0.0             # in-place distillation weight (0: off; BigNAS)
    ramp_fraction: float = 0.5       # s_max reaches max(choices) after this fraction
    # individually pruned baselines
    pruned_steps: int = 60           # each pruned model's steps (= its passes)
    prune_ramp_fraction: float = 0.5
    prune_every: int = 5
    finetune_dense_baseline: bool = False  # the 0% baseline: the dense model as is
    # optimisation (both approaches, the same)
    lr: float = 3e-4
    warmup_steps: int = 10
    decay: str = "constant"          # after warm-up; "constant" or "cosine"
    batch_size: int = 16
    specaugment: tuple[int, int, int, int] = (15, 2, 10, 2)
    dense_batch_size: int = 0        # the dense model's training batch (0: its recipe's)
    # the 3-seed comparison
    seeds: tuple[int, ...] = (0, 1, 2)  # fine-tuning seeds (data order, masks, members)
    dense_seed: int = 0              # the one shared dense model every seed starts from
    curve_every: int = 0             # dev-loss learning curves every this many steps (0: off)
    curve_dev_utterances: int = 100
    # search
    budget_sparsity: float = 0.7     # budget = size of the uniform sub-network at this
    population: int = 8
    generations: int = 6
    mutation_prob: float = 0.2
    mutation: str = "step"           # "step": a gene moves one choice up or down; "resample"
    seed_search_with_uniform: bool = True
    search_metric: str = "loss"      # dev-set fitness: RNN-T "loss" or greedy "wer"
    search_dev_utterances: int = 0   # 0: the whole dev set
    eval_batch_size: int = 64
    rtf_utterances: int = 20
    num_workers: int = 0             # DataLoader workers reading batches ahead (full scale)
    gpus: int = 0                    # full scale: DDP workers (0: every visible GPU)

    def __post_init__(self):
        if self.prune_scope not in ("encoder", "encoder+predictor"):
            raise ValueError(f"prune_scope must be 'encoder' or 'encoder+predictor', "
                             f"got {self.prune_scope!r}")
        if self.granularity not in ("linear", "block"):
            raise ValueError(f"granularity must be 'linear' or 'block', got {self.granularity!r}")
        if self.mutation not in ("step", "resample"):
            raise ValueError(f"mutation must be 'step' or 'resample', got {self.mutation!r}")
        if self.search_metric not in ("loss", "wer"):
            raise ValueError(f"search_metric must be 'loss' or 'wer', got {self.search_metric!r}")
        if self.sampling not in ("uniform", "per-layer"):
            raise ValueError(f"sampling must be 'uniform' or 'per-layer', got {self.sampling!r}")
        if self.member_levels not in ("levels", "choices"):
            raise ValueError(f"member_levels must be 'levels' or 'choices', "
                             f"got {self.member_levels!r}")
        if self.decay not in ("constant", "cosine"):
            raise ValueError(f"decay must be 'constant' or 'cosine', got {self.decay!r}")
        if not 0.0 <= self.distill < 1.0 or not 0.0 <= self.layer_jitter <= 1.0:
            raise ValueError("need 0 <= distill < 1 and 0 <= layer_jitter <= 1")
        if self.distill and not self.sandwich:
            raise ValueError("in-place distillation needs the dense member (sandwich=True)")
        if not self.seeds:
            raise ValueError("seeds must hold at least one seed")
        bad = [s for s in (*self.levels, *self.sparsity_choices, self.budget_sparsity)
               if not 0.0 <= s < 1.0]
        if bad:
            raise ValueError(f"sparsities must lie in [0, 1), got {bad}")
        if 0.0 not in self.sparsity_choices:
            raise ValueError("sparsity_choices must contain 0.0 (the dense sub-network)")
        missing = [s for s in self.levels if s not in self.sparsity_choices]
        if missing:
            raise ValueError(f"levels {missing} are not among sparsity_choices "
                             f"{self.sparsity_choices}: the supernet never trains them")

    @property
    def pruned_levels(self) -> tuple[float, ...]:
        """The levels with their own individually pruned model."""
        return tuple(s for s in self.levels if s != 0.0 or self.finetune_dense_baseline)


CONFIGS = ScaleConfigs(
    smoke=OmniSparsityConfig(dense_scale="smoke", pruned_steps=8, warmup_steps=1,
                             prune_every=1, batch_size=8, population=4, seeds=(0, 1),
                             generations=2, rtf_utterances=2, eval_batch_size=32,
                             curve_every=4, curve_dev_utterances=8),
    # not tuned: lr 1e-3 for both approaches (the dense recipe's final lr is 1.5e-4).
    # Each pruned model trains until its dev loss plateaus: the earlier 160 steps at batch 16,
    # ramp over half, still moved -1.3/-9.5/-9.0% (50/70/90%) over the last quarter; now 320
    # steps at batch 8 (a step costs about half as much), the sparsity ramp over the first
    # quarter, so three quarters of the run are recovery.
    tutorial=OmniSparsityConfig(dense_scale="tutorial", pruned_steps=320, batch_size=8,
                                prune_ramp_fraction=0.25, warmup_steps=20, lr=1e-3,
                                prune_every=10, curve_every=20, search_dev_utterances=100),
    # full: 30 epochs of LibriSpeech 960 h at a global batch of 128 for each pruned model;
    # the recipe's SpecAugment (lib.asr.DENSE_RECIPES["full"])
    full=OmniSparsityConfig(dense_scale="full", pruned_steps=66_000, warmup_steps=2000,
                            lr=5e-4, batch_size=128, ramp_fraction=0.3,
                            specaugment=(27, 2, 100, 2), seeds=(0, 1, 2),
                            prune_ramp_fraction=0.3, prune_every=200, population=32,
                            generations=20, rtf_utterances=100, num_workers=8,
                            curve_every=2000, curve_dev_utterances=500),
)


# --- the baseline: one gradually pruned model per sparsity -------------------------------

def gradual_prune(artifact: dict[str, Any], train_set, config: OmniSparsityConfig,
                  sparsity: float, seed: int, *, ckpt_dir: str | Path | None = None,
                  run_key: str | None = None,
                  show_progress: bool | None = None, dev_set=None) -> dict[str, Any]:
    """The baseline: one model pruned to uniform ``sparsity`` (Zhu & Gupta's cubic schedule
    over ``prune_ramp_fraction`` of ``pruned_steps``, masks updated every ``prune_every``).
    With ``dev_set`` the dev loss is recorded every ``curve_every`` steps (``"curve"``)."""
    from lib.core.distributed import rank_and_world, wrap_ddp

    seed_everything(seed)
    train_cfg = finetune_train_config(config, config.pruned_steps)
    model, groups = prepare_model(artifact, config, train_cfg)
    opt, sched = make_optimizer(model, train_cfg)
    rank, world = rank_and_world()
    loader = StepBatchLoader(train_set, BucketBatches(train_set.lengths(), config.batch_size,
                                                      derive_seed(seed, "prune", sparsity)),
                             config.pruned_steps, rank=rank, world=world,
                             num_workers=config.num_workers)
    trainable = wrap_ddp(model) if world > 1 else model
    end = max(1, int(round(config.prune_ramp_fraction * config.pruned_steps)))
    device = training_device()
    curve: list[dict[str, Any]] = []

    def record_curve(done: int) -> None:
        if dev_set is not None and config.curve_every:
            curve.append({"step": done, "passes": done, "dev_loss": _current_loss(
                model, dev_set, config.eval_batch_size)})

    record_curve(0)

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        s_t = cubic_sparsity(step, sparsity, 0, end)
        if step % config.prune_every == 0 or step == end:
            apply_subnet(groups, (s_t,) * len(groups), keep_pruned=True)
        batch = loader.get(step).to(device)
        opt.zero_grad(set_to_none=True)
        loss = trainable(batch)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        done = step + 1
        if config.curve_every and (done % config.curve_every == 0
                                   or done == limit_steps(config.pruned_steps)):
            record_curve(done)
        return {"loss": loss.detach().item(), "grad_norm": float(norm), "sparsity": s_t}

    result = core_train_loop(step_fn, config.pruned_steps,
                             state={"model": model, "opt": opt, "sched": sched},
                             ckpt_dir=ckpt_dir, run_key=run_key,
                             ckpt_every=max(1, config.pruned_steps // 20)
                             if ckpt_dir else 0, desc=f"prune to {sparsity:.0%}",
                             show_progress=show_progress)
    apply_subnet(groups, (sparsity,) * len(groups), keep_pruned=True)  # exactly the target
    return {"state_dict": cpu_state_dict(model), "history": result.history,
            "train_seconds": result.wall_time_s, "steps": result.steps,
            "passes": result.steps, "sparsity": sparsity, "curve": curve}


@torch.no_grad()
def _current_loss(model: ASRModel, dataset, batch_size: int) -> float:
    """Mean RNN-T loss per utterance of the model with its masks as they are (eval mode)."""
    from lib.asr.model import model_device

    was = model.training
    model.eval()
    total, n = 0.0, 0
    for batch in dataset.batches(batch_size):
        total += float(model(batch.to(model_device(model)))) * len(batch)
        n += len(batch)
    model.train(was)
    return total / n


# --- after training: evaluation and the search ---------------------------------------------

def load_finetuned(dense_artifact: dict[str, Any], trained: dict[str, Any],
                   config: OmniSparsityConfig) -> tuple[ASRModel, list, Any]:
    """``(model with masks, groups, tokenizer)`` from a supernet or pruned artifact."""
    model, tokenizer = model_from_artifact(dense_artifact)
    groups = weight_groups(model, config.prune_scope, config.granularity)
    attach_dense_masks(groups)
    model.load_state_dict(trained["state_dict"])
    return model.to(training_device()).eval(), groups, tokenizer


def subnet_wer(model: ASRModel, groups, sparsities: Sequence[float], dataset, tokenizer,
               batch_size: int = 64) -> float:
    """Greedy WER of the supernet's sub-network ``sparsities`` (masks from its weights)."""
    apply_subnet(groups, sparsities)
    return evaluate_wer(model, dataset, tokenizer, batch_size=batch_size)


@torch.no_grad()
def subnet_loss(model: ASRModel, groups, sparsities: Sequence[float], dataset,
                batch_size: int = 64) -> float:
    """Mean RNN-T loss per utterance of a sub-network (a smoother search objective than
    WER on a few hundred utterances: every frame's probabilities count, not only argmaxes)."""
    from lib.asr.model import model_device

    apply_subnet(groups, sparsities)
    model.eval()
    total, n = 0.0, 0
    for batch in dataset.batches(batch_size):
        total += float(model(batch.to(model_device(model)))) * len(batch)
        n += len(batch)
    return total / n


# --- the whole experiment, with artifacts ---------------------------------------------------

def supernet_plan(config: OmniSparsityConfig) -> dict[str, Any]:
    """The supernet's compute, in forward/backward passes, matched to the baselines': the
    ramp's reference length, and the steps after which it has spent the passes of ONE
    pruned model (the paper's cost claim) and of ALL of them together."""
    one = limit_steps(config.pruned_steps)
    n_models = max(1, len(config.pruned_levels))
    full_members = len(sample_subnets(10**9, 1, replace(config, ramp_fraction=0.0),
                                      make_generator(0)))
    ref = config.supernet_steps or max(1, -(-one // full_members))
    sized = replace(config, supernet_steps=ref)
    steps_one, steps_all = supernet_budget_steps(sized, [one, n_models * one])
    return {"config": sized, "passes_one": one, "passes_all": n_models * one,
            "steps_one": steps_one, "steps_all": steps_all, "members": full_members}


def _curve_set(config: OmniSparsityConfig, sets: dict[str, Any]):
    dev = sets[split_names(config)[0]]
    n = config.curve_dev_utterances
    return dev.subset(range(min(n, len(dev)))) if config.curve_every else None


def _train_one(kind: str, config: OmniSparsityConfig, seed: int, dense_seed: int,
               sparsity: float, ckpt_dir: str | None, run_key: str | None,
               show_progress: bool | None = None,
               loaded: tuple[dict[str, Any], Any] | None = None) -> dict[str, Any]:
    """Train the supernet (``kind="supernet"``: the compute of all pruned models, with a
    snapshot at one model's) or one pruned model (``"pruned"``)."""
    if loaded is None:
        dense, sets, _ = dense_and_data(config, dense_seed)
    else:
        dense, sets = loaded
    dev = _curve_set(config, sets)
    if kind == "supernet":
        plan = supernet_plan(config)
        out = train_supernet(dense, sets["train"], plan["config"], seed, ckpt_dir=ckpt_dir,
                             run_key=run_key, show_progress=show_progress,
                             steps=plan["steps_all"], snapshot_steps=(plan["steps_one"],),
                             dev_set=dev, curve_every=config.curve_every)
        out["plan"] = {k: v for k, v in plan.items() if k != "config"}
        return out
    return gradual_prune(dense, sets["train"], config, sparsity, seed, ckpt_dir=ckpt_dir,
                         run_key=run_key, show_progress=show_progress, dev_set=dev)


def _build(kind: str, config: OmniSparsityConfig, seed: int, dense_seed: int, sparsity: float,
           loaded, show_progress: bool | None, ckpt_dir: Path, run_key: str) -> dict[str, Any]:
    """Small scales train here, without checkpoints; full scale checkpoints into the run's
    own folder and trains data-parallel over the requested workers."""
    from lib.core.distributed import requested_workers, run_data_parallel

    if config.dense_scale != "full":
        return _train_one(kind, config, seed, dense_seed, sparsity, None, None, show_progress,
                          loaded)
    workers = requested_workers(config.gpus or None)
    if workers <= 1:
        return _train_one(kind, config, seed, dense_seed, sparsity, str(ckpt_dir), run_key,
                          show_progress, loaded)
    return run_data_parallel(_train_one, workers, kind, config, seed, dense_seed, sparsity,
                             str(ckpt_dir), run_key, workdir=ckpt_dir)


def _keys(config: OmniSparsityConfig, seed: int, dense_seed: int,
          cache: ArtifactCache) -> tuple[dict[str, Any], list[str]]:
    """The config part of the fine-tuned models' keys, and the dense model they depend on."""
    recipe = dense_recipe(config.dense_scale, config.dense_batch_size)
    key = {"config": config, "seed": seed, "dense_seed": dense_seed}
    return key, [dense_asr_key(recipe, dense_seed, cache)]


def finetuned_cached(config: OmniSparsityConfig, seed: int, *, dense_seed: int | None = None,
                     cache: ArtifactCache | None = None) -> bool:
    """Whether ``finetuned_artifacts`` would only load (the supernet and every pruned model
    are in the cache)."""
    cache = cache or ArtifactCache()
    dense_seed = config.dense_seed if dense_seed is None else dense_seed
    key, parents = _keys(config, seed, dense_seed, cache)
    code = [finetuned_artifacts]
    return cache.contains("omni-supernet", key, code=code, depends_on=parents) and all(
        cache.contains("omni-pruned", {**key, "sparsity": s}, code=code, depends_on=parents)
        for s in config.pruned_levels)


def all_cached(config: OmniSparsityConfig, cache: ArtifactCache | None = None) -> bool:
    """Whether every seed's models are in the cache."""
    return all(finetuned_cached(config, s, cache=cache) for s in config.seeds)


def finetuned_artifacts(config: OmniSparsityConfig, seed: int, *, dense_seed: int | None = None,
                        cache: ArtifactCache | None = None,
                        show_progress: bool | None = None) -> dict[str, Any]:
    """The dense model, the supernet and one pruned model per level (each trained once and
    cached, keyed on the dense model's key too): ``{"dense", "supernet", "supernet_one",
    "pruned": {sparsity: ...}, "sets", "tokenizer"}``. ``supernet`` spent the passes of all
    pruned models together, ``supernet_one`` (the same run's snapshot) those of one.
    Full scale trains each data-parallel."""
    cache = cache or ArtifactCache()
    dense_seed = config.dense_seed if dense_seed is None else dense_seed
    dense, sets, tokenizer = dense_and_data(config, dense_seed, cache)
    key, parents = _keys(config, seed, dense_seed, cache)
    supernet = cache.get_or_train(
        "omni-supernet", key,
        lambda ckpt, run: _build("supernet", config, seed, dense_seed, 0.0, (dense, sets),
                                 show_progress, ckpt, run), depends_on=parents)
    pruned = {}
    for s in config.pruned_levels:
        pruned[s] = cache.get_or_train(
            "omni-pruned", {**key, "sparsity": s},
            lambda ckpt, run, s=s: _build("pruned", config, seed, dense_seed, s, (dense, sets),
                                          show_progress, ckpt, run), depends_on=parents)
    plan = supernet.get("plan", {})
    snaps = supernet.get("snapshots", {})
    one = None
    if plan and plan.get("steps_one") in snaps:
        one = {"state_dict": snaps[plan["steps_one"]], "steps": plan["steps_one"],
               "passes": plan["passes_one"],
               "train_seconds": supernet["train_seconds"] * plan["steps_one"]
               / max(1, supernet["steps"])}
    return {"dense": dense, "supernet": supernet, "supernet_one": one, "pruned": pruned,
            "sets": sets, "tokenizer": tokenizer, "seed": seed}


SUPERNET, SUPERNET_ONE, PRUNED = ("omni-sparsity supernet", "supernet, one model's compute",
                                  "individually pruned")


def _score(row: dict[str, Any], model, sets, tok, splits, batch_size: int) -> dict[str, Any]:
    for split in splits:
        row[f"wer_{split}"], row[f"hyps_{split}"] = evaluate_wer(
            model, sets[split], tok, batch_size=batch_size, return_hypotheses=True)
        row[f"errors_{split}"] = utterance_word_errors(sets[split].texts, row[f"hyps_{split}"])
    return row


def evaluate_levels(config: OmniSparsityConfig, runs: dict[str, Any],
                    splits: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """WER of every approach at every level: rows of (approach, sparsity, seed, size,
    WER/split, hypotheses/split, word errors per utterance/split); the supernet at the
    compute of all pruned models (``SUPERNET``), at one model's (``SUPERNET_ONE``, when
    ``runs`` has it) and the pruned models (``PRUNED``); ``splits`` default to
    ``split_names(config)[1]``."""
    splits = split_names(config)[1] if splits is None else splits
    rows = []
    sets, tok = runs["sets"], runs["tokenizer"]
    seed = runs.get("seed", 0)
    supers = [(SUPERNET, runs["supernet"])]
    if runs.get("supernet_one") is not None:
        supers.append((SUPERNET_ONE, runs["supernet_one"]))
    for approach, trained in supers:
        supernet, groups, _ = load_finetuned(runs["dense"], trained, config)
        total = count_parameters(supernet)
        for s in config.levels:
            genes = (s,) * len(groups)
            apply_subnet(groups, genes)
            rows.append(_score({"approach": approach, "sparsity": s, "seed": seed,
                                "params": subnet_size(groups, genes, total)},
                               supernet, sets, tok, splits, config.eval_batch_size))
    for s in config.levels:
        if s in runs["pruned"]:
            model, groups_p, _ = load_finetuned(runs["dense"], runs["pruned"][s], config)
        else:  # the dense model itself is the 0% baseline
            model, _ = model_from_artifact(runs["dense"])
            model.to(training_device())
            groups_p = weight_groups(model, config.prune_scope, config.granularity)
        total = count_parameters(model)
        rows.append(_score({"approach": PRUNED, "sparsity": s, "seed": seed,
                            "params": subnet_size(groups_p, (s,) * len(groups_p), total)},
                           model, sets, tok, splits, config.eval_batch_size))
    return rows


def paired_comparisons(config: OmniSparsityConfig, rows: Sequence[dict[str, Any]],
                       references: Sequence[str], split: str,
                       boot_seed: int = 0) -> list[dict[str, Any]]:
    """Per supernet budget and sparsity > 0: the relative WER change of the supernet's
    sub-network against the individually pruned model, ``WER_s / WER_p - 1`` (negative: the
    supernet is better; the paper: -2% to -6.6%), with a paired bootstrap 95% interval over
    seeds x test utterances (``lib.core.stats.paired_bootstrap``: the same resampled seeds
    and utterances score both). ``detectable`` is the interval's half width: about the
    smallest relative difference this experiment resolves."""
    from lib.core.stats import paired_bootstrap as paired

    words = [len(r.split()) for r in references]
    by = {(r["approach"], r["sparsity"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    out = []
    for approach in (SUPERNET_ONE, SUPERNET):
        for s in config.levels:
            if s == 0.0 or not all((approach, s, k) in by and (PRUNED, s, k) in by
                                   for k in seeds):
                continue
            a = [by[(approach, s, k)][f"errors_{split}"] for k in seeds]
            b = [by[(PRUNED, s, k)][f"errors_{split}"] for k in seeds]
            iv = paired(a, b, denominators=words, relative=True, seed=boot_seed)
            out.append({"budget": approach, "sparsity": s, "seeds": len(seeds),
                        "wer_supernet": sum(map(sum, a)) / (len(seeds) * sum(words)),
                        "wer_pruned": sum(map(sum, b)) / (len(seeds) * sum(words)),
                        "relative_change": iv.estimate, "ci_low": iv.lo, "ci_high": iv.hi,
                        "detectable": iv.half_width, "interval": iv})
    return out


def claim_metrics(comparisons: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The record metrics the chapter's ``CLAIMS`` read: each comparison's interval under
    ``relwer_<budget>_s<level>`` (budget ``supernet`` = one model's compute, the paper's
    claim; ``supernet_all`` = the compute of all pruned models)."""
    out: dict[str, float] = {}
    for c in comparisons:
        budget = "supernet" if c["budget"] == SUPERNET_ONE else "supernet_all"
        out.update(c["interval"].as_metrics(
            f"relwer_{budget}_vs_pruned_s{int(round(100 * c['sparsity']))}"))
    return out


def claim_table(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """Every claim's measured text and verdict from the record's metrics."""
    return [{"claim": c.id, "what": c.claim, "paper": c.paper,
             **(lambda j: {"ours": j.ours, "verdict": j.verdict})(c.evaluate(metrics))}
            for c in CLAIMS]


def learning_curves(runs_by_seed: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Long table of the dev-loss curves: (approach, sparsity, seed, passes, dev_loss) of
    every pruned model and of the supernet's uniform members."""
    out = []
    for runs in runs_by_seed:
        seed = runs.get("seed", 0)
        for s, p in runs["pruned"].items():
            out += [{"approach": PRUNED, "sparsity": s, "seed": seed, "passes": c["passes"],
                     "dev_loss": c["dev_loss"]} for c in p.get("curve", [])]
        for c in runs["supernet"].get("curve", []):
            out += [{"approach": SUPERNET, "sparsity": float(k[len("dev_loss_"):]),
                     "seed": seed, "passes": c["passes"], "dev_loss": v}
                    for k, v in c.items() if k.startswith("dev_loss_")]
    return out


def plateau(curves: Sequence[dict[str, Any]], tail: float = 0.25) -> list[dict[str, Any]]:
    """Per pruned model: the relative dev-loss change over the last ``tail`` of its passes
    (near 0: its dev loss has plateaued; negative: still improving)."""
    from collections import defaultdict

    groups = defaultdict(list)
    for c in curves:
        if c["approach"] == PRUNED:
            groups[(c["sparsity"], c["seed"])].append(c)
    out = []
    for (s, seed), cs in sorted(groups.items()):
        cs = sorted(cs, key=lambda c: c["passes"])
        end = cs[-1]["passes"]
        before = [c for c in cs if c["passes"] <= (1 - tail) * end][-1]
        out.append({"sparsity": s, "seed": seed, "passes": end,
                    "dev_loss_end": cs[-1]["dev_loss"],
                    "relative_change_last_quarter": cs[-1]["dev_loss"] / before["dev_loss"] - 1})
    return out


def compare_approaches(rows: Sequence[dict[str, Any]], references: Sequence[str],
                       split: str, seed: int = 0) -> list[dict[str, Any]]:
    """Per sparsity: both WERs, the supernet's relative gain ``(b - o) / b`` and a paired
    bootstrap 95% interval of ``WER(pruned) - WER(supernet)`` over the test utterances."""
    by = {(r["approach"], r["sparsity"]): r for r in rows}
    out = []
    for (approach, s), ours in sorted(by.items(), key=lambda kv: kv[0][1]):
        if approach != "omni-sparsity supernet" or ("individually pruned", s) not in by:
            continue
        base = by[("individually pruned", s)]
        boot = paired_bootstrap(references, base[f"hyps_{split}"], ours[f"hyps_{split}"],
                                seed=seed)
        out.append({"sparsity": s, "params": ours["params"],
                    "wer_pruned": base[f"wer_{split}"], "wer_supernet": ours[f"wer_{split}"],
                    "relative_gain": relative_gain(base[f"wer_{split}"], ours[f"wer_{split}"]),
                    "diff_ci_low": boot["low"], "diff_ci_high": boot["high"],
                    "p_supernet_better": boot["p_b_better"]})
    return out


def search_for_budget(config: OmniSparsityConfig, runs: dict[str, Any], seed: int,
                      splits: Sequence[str] | None = None) -> dict[str, Any]:
    """Evolutionary search of per-layer sparsities for the budget (the uniform
    ``budget_sparsity`` sub-network's size), scored on dev; then the winner and the uniform
    sub-network of that size evaluated on the test splits. No retraining."""
    sets, tok = runs["sets"], runs["tokenizer"]
    dev_name, default_tests = split_names(config)
    splits = default_tests if splits is None else splits
    model, groups, _ = load_finetuned(runs["dense"], runs["supernet"], config)
    total = count_parameters(model)
    dev = sets[dev_name]
    if config.search_dev_utterances and config.search_dev_utterances < len(dev):
        dev = dev.subset(range(config.search_dev_utterances))
    n_genes = len(groups)
    uniform = (config.budget_sparsity,) * n_genes
    budget = subnet_size(groups, uniform, total)

    def size(genes):
        return subnet_size(groups, genes, total)

    def fitness(genes):
        if config.search_metric == "loss":
            return subnet_loss(model, groups, genes, dev, config.eval_batch_size)
        return subnet_wer(model, groups, genes, dev, tok, config.eval_batch_size)

    t0 = time.perf_counter()
    found = evolutionary_search(
        fitness, size, budget, n_genes, config.sparsity_choices,
        # a dry run (``--max-steps``) caps the search's generations as it caps training
        population=max(2, limit_steps(config.population)),
        generations=limit_steps(config.generations),
        mutation_prob=config.mutation_prob, mutation=config.mutation,
        generator=make_generator(derive_seed(seed, "search")),
        initial=[uniform] if config.seed_search_with_uniform else [])
    search_seconds = time.perf_counter() - t0
    out = {"budget": budget, "uniform": uniform, "best": found["best"],
           "best_size": found["size"], "trace": found["trace"],
           "evaluations": found["evaluations"], "search_seconds": search_seconds,
           "dev_fitness_best": found["fitness"], "dev_fitness_uniform": fitness(uniform),
           "metric": config.search_metric, "group_names": [n for n, _ in groups]}
    for split in (dev_name, *splits):
        out[f"{split}_wer_best"] = subnet_wer(model, groups, found["best"], sets[split], tok,
                                              config.eval_batch_size)
        out[f"{split}_wer_uniform"] = subnet_wer(model, groups, uniform, sets[split], tok,
                                                 config.eval_batch_size)
    return out


def training_costs(config: OmniSparsityConfig, runs: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps, forward/backward passes and wall time of each approach (and the shared dense
    pre-training both start from)."""
    pruned = list(runs["pruned"].values())
    dense = runs["dense"]
    rows = [
        {"approach": "dense pre-training (shared)", "models": 1, "optimizer_steps": dense["steps"],
         "fwd_bwd_passes": dense["steps"], "wall_s": dense["train_seconds"]},
        {"approach": PRUNED, "models": len(pruned),
         "optimizer_steps": sum(p["steps"] for p in pruned),
         "fwd_bwd_passes": sum(p["passes"] for p in pruned),
         "wall_s": sum(p["train_seconds"] for p in pruned)}]
    if runs.get("supernet_one") is not None:
        one = runs["supernet_one"]
        rows.append({"approach": SUPERNET_ONE, "models": 1, "optimizer_steps": one["steps"],
                     "fwd_bwd_passes": one["passes"], "wall_s": one["train_seconds"]})
    rows.append({"approach": SUPERNET, "models": 1,
                 "optimizer_steps": runs["supernet"]["steps"],
                 "fwd_bwd_passes": runs["supernet"]["passes"],
                 "wall_s": runs["supernet"]["train_seconds"]})
    return rows


def run(config: OmniSparsityConfig, seed: int = 0, *, cache: ArtifactCache | None = None,
        show_progress: bool | None = None) -> dict[str, Any]:
    """The whole experiment: train (or load) every seed's models, evaluate every level,
    the paired 3-seed comparisons and their verdicts, the curves, the search (``seed``'s
    supernet)."""
    runs = [finetuned_artifacts(config, k, cache=cache, show_progress=show_progress)
            for k in config.seeds]
    rows = [r for one in runs for r in evaluate_levels(config, one)]
    dev, (hard, _) = split_names(config)
    refs = runs[0]["sets"][hard].texts
    comparisons = paired_comparisons(config, rows, refs, hard)
    metrics = claim_metrics(comparisons)
    chosen = next((r for r in runs if r["seed"] == seed), runs[0])
    search = search_for_budget(config, chosen, seed)
    curves = learning_curves(runs)
    plan = {k: v for k, v in supernet_plan(config).items() if k != "config"}
    return {"levels": rows, "claim_metrics": metrics, "claims": claim_table(metrics),
            "comparisons": [{k: v for k, v in c.items() if k != "interval"}
                            for c in comparisons],
            "curves": curves, "plateau": plateau(curves), "plan": plan,
            "search": search, "costs": training_costs(config, chosen),
            "dense_wer": runs[0]["dense"]["wer"], "references": refs, "hard_split": hard,
            "dev_split": dev}


def relative_gain(baseline_wer: float, ours_wer: float) -> float:
    """Relative WER reduction ``(b - o) / b`` (the paper's 2%-6.6% is this on test-other)."""
    return (baseline_wer - ours_wer) / baseline_wer if baseline_wer > 0 else float("nan")


# --- claims ------------------------------------------------------------------------------------
def _claim(level: int, budget: str) -> Claim:
    one = budget == "supernet"
    what = ("trained at the compute of ONE pruned model" if one else
            "trained at the compute of ALL pruned models together")
    ident = "gain-at-one-model-cost" if one and level == 90 else \
        f"{'gain' if one else 'gain-all-compute'}-{level}"
    return Claim.interval(
        "omni_sparsity", ident,
        f"Omni-sparsity sub-networks, {what}, have lower WER than individually pruned "
        f"models at {level}% sparsity (unseen voices; 3 seeds x test utterances)",
        paper="2-6.6% relative lower WER (LibriSpeech test-other), at about one model's cost",
        prefix=f"relwer_{budget}_vs_pruned_s{level}", paper_effect=-0.02,
        unit="relative WER change", percent=True)


CLAIMS = [_claim(level, budget) for budget in ("supernet", "supernet_all")
          for level in (90, 70, 50)]


__all__ = ["CLAIMS", "CONFIGS", "PRUNED", "SUPERNET", "SUPERNET_ONE", "OmniSparsityConfig",
           "all_cached", "claim_metrics", "claim_table", "compare_approaches",
           "evaluate_levels", "finetuned_artifacts", "finetuned_cached", "gradual_prune",
           "learning_curves", "load_finetuned", "paired_comparisons", "plateau",
           "relative_gain", "run", "search_for_budget", "subnet_loss", "subnet_wer",
           "supernet_plan", "training_costs"]
