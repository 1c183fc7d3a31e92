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
``OmniSparsityConfig``): unstructured magnitude masks per weight matrix; the Emformer
layers' weight matrices are pruned (``prune_scope``), with one sparsity per linear layer,
i.e. per weight matrix (``granularity``); per-layer choices ``{0, 0.1, ..., 0.9}``;
dense + sparsest + 2 random sub-networks per step with accumulated gradients; masks
recomputed every step; both approaches start from the same pre-trained dense model
(``lib.asr.dense_asr``, ``task.py``); the search scores candidates by their dev-set RNN-T
loss (``search_metric``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
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
    subnet_size,
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
    supernet_steps: int = 60
    n_random: int = 2
    sandwich: bool = True            # also train the dense and the sparsest sub-network
    ramp_fraction: float = 0.5       # s_max reaches max(choices) after this fraction
    # individually pruned baselines
    pruned_steps: int = 60
    prune_ramp_fraction: float = 0.5
    prune_every: int = 5
    finetune_dense_baseline: bool = False  # the 0% baseline: the dense model as is
    # optimisation (both approaches)
    lr: float = 3e-4
    warmup_steps: int = 10
    batch_size: int = 16
    dense_batch_size: int = 0        # the dense model's training batch (0: its recipe's)
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


CONFIGS = ScaleConfigs(
    smoke=OmniSparsityConfig(dense_scale="smoke", supernet_steps=4, pruned_steps=4,
                             warmup_steps=1, prune_every=1, batch_size=8, population=4,
                             generations=2, rtf_utterances=2, eval_batch_size=32),
    tutorial=OmniSparsityConfig(dense_scale="tutorial", supernet_steps=50, pruned_steps=50,
                                search_dev_utterances=100),
    # full: 30 epochs of LibriSpeech 960 h at a global batch of 128 for each model
    full=OmniSparsityConfig(dense_scale="full", supernet_steps=66_000, pruned_steps=66_000,
                            warmup_steps=2000, lr=5e-4, batch_size=128, ramp_fraction=0.3,
                            prune_ramp_fraction=0.3, prune_every=200, population=32,
                            generations=20, rtf_utterances=100, num_workers=8),
)


# --- the baseline: one gradually pruned model per sparsity -------------------------------

def gradual_prune(artifact: dict[str, Any], train_set, config: OmniSparsityConfig,
                  sparsity: float, seed: int, *, ckpt_dir: str | Path | None = None,
                  run_key: str | None = None,
                  show_progress: bool | None = None) -> dict[str, Any]:
    """The baseline: one model pruned to uniform ``sparsity`` (Zhu & Gupta's cubic schedule
    over ``prune_ramp_fraction`` of ``pruned_steps``, masks updated every ``prune_every``)."""
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
            "passes": result.steps, "sparsity": sparsity}


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

def _train_one(kind: str, config: OmniSparsityConfig, seed: int, dense_seed: int,
               sparsity: float, ckpt_dir: str | None, run_key: str | None,
               show_progress: bool | None = None,
               loaded: tuple[dict[str, Any], Any] | None = None) -> dict[str, Any]:
    """Train the supernet (``kind="supernet"``) or one pruned model (``"pruned"``)."""
    if loaded is None:
        dense, sets, _ = dense_and_data(config, dense_seed)
    else:
        dense, sets = loaded
    if kind == "supernet":
        return train_supernet(dense, sets["train"], config, seed, ckpt_dir=ckpt_dir,
                              run_key=run_key, show_progress=show_progress)
    return gradual_prune(dense, sets["train"], config, sparsity, seed, ckpt_dir=ckpt_dir,
                         run_key=run_key, show_progress=show_progress)


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
    dense_seed = seed if dense_seed is None else dense_seed
    key, parents = _keys(config, seed, dense_seed, cache)
    code = [finetuned_artifacts]
    pruned = [s for s in config.levels if s != 0.0 or config.finetune_dense_baseline]
    return cache.contains("omni-supernet", key, code=code, depends_on=parents) and all(
        cache.contains("omni-pruned", {**key, "sparsity": s}, code=code, depends_on=parents)
        for s in pruned)


def finetuned_artifacts(config: OmniSparsityConfig, seed: int, *, dense_seed: int | None = None,
                        cache: ArtifactCache | None = None,
                        show_progress: bool | None = None) -> dict[str, Any]:
    """The dense model, the supernet and one pruned model per level (each trained once and
    cached, keyed on the dense model's key too): ``{"dense", "supernet", "pruned":
    {sparsity: ...}, "sets", "tokenizer"}``. Full scale trains each data-parallel."""
    cache = cache or ArtifactCache()
    dense_seed = seed if dense_seed is None else dense_seed
    dense, sets, tokenizer = dense_and_data(config, dense_seed, cache)
    key, parents = _keys(config, seed, dense_seed, cache)
    supernet = cache.get_or_train(
        "omni-supernet", key,
        lambda ckpt, run: _build("supernet", config, seed, dense_seed, 0.0, (dense, sets),
                                 show_progress, ckpt, run), depends_on=parents)
    pruned = {}
    for s in config.levels:
        if s == 0.0 and not config.finetune_dense_baseline:
            continue
        pruned[s] = cache.get_or_train(
            "omni-pruned", {**key, "sparsity": s},
            lambda ckpt, run, s=s: _build("pruned", config, seed, dense_seed, s, (dense, sets),
                                          show_progress, ckpt, run), depends_on=parents)
    return {"dense": dense, "supernet": supernet, "pruned": pruned, "sets": sets,
            "tokenizer": tokenizer}


def evaluate_levels(config: OmniSparsityConfig, runs: dict[str, Any],
                    splits: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """WER of both approaches at every level: rows of (approach, sparsity, size, WER/split,
    hypotheses/split); ``splits`` default to ``split_names(config)[1]``."""
    splits = split_names(config)[1] if splits is None else splits
    rows = []
    sets, tok = runs["sets"], runs["tokenizer"]
    supernet, groups, _ = load_finetuned(runs["dense"], runs["supernet"], config)
    total = count_parameters(supernet)
    for s in config.levels:
        genes = (s,) * len(groups)
        row = {"approach": "omni-sparsity supernet", "sparsity": s,
               "params": subnet_size(groups, genes, total)}
        apply_subnet(groups, genes)
        for split in splits:
            row[f"wer_{split}"], row[f"hyps_{split}"] = evaluate_wer(
                supernet, sets[split], tok, batch_size=config.eval_batch_size,
                return_hypotheses=True)
        rows.append(row)
    for s in config.levels:
        if s in runs["pruned"]:
            model, groups_p, _ = load_finetuned(runs["dense"], runs["pruned"][s], config)
        else:  # the dense model itself is the 0% baseline
            model, _ = model_from_artifact(runs["dense"])
            model.to(training_device())
            groups_p = weight_groups(model, config.prune_scope, config.granularity)
        row = {"approach": "individually pruned", "sparsity": s,
               "params": subnet_size(groups_p, (s,) * len(groups_p), total)}
        for split in splits:
            row[f"wer_{split}"], row[f"hyps_{split}"] = evaluate_wer(
                model, sets[split], tok, batch_size=config.eval_batch_size,
                return_hypotheses=True)
        rows.append(row)
    return rows


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
    return [
        {"approach": "dense pre-training (shared)", "models": 1, "optimizer_steps": dense["steps"],
         "fwd_bwd_passes": dense["steps"], "wall_s": dense["train_seconds"]},
        {"approach": "individually pruned", "models": len(pruned),
         "optimizer_steps": sum(p["steps"] for p in pruned),
         "fwd_bwd_passes": sum(p["passes"] for p in pruned),
         "wall_s": sum(p["train_seconds"] for p in pruned)},
        {"approach": "omni-sparsity supernet", "models": 1,
         "optimizer_steps": runs["supernet"]["steps"],
         "fwd_bwd_passes": runs["supernet"]["passes"],
         "wall_s": runs["supernet"]["train_seconds"]},
    ]


def run(config: OmniSparsityConfig, seed: int = 0, *, cache: ArtifactCache | None = None,
        show_progress: bool | None = None) -> dict[str, Any]:
    """The whole experiment: train (or load) everything, evaluate every level, search."""
    runs = finetuned_artifacts(config, seed, cache=cache, show_progress=show_progress)
    rows = evaluate_levels(config, runs)
    search = search_for_budget(config, runs, seed)
    return {"levels": rows, "search": search, "costs": training_costs(config, runs),
            "dense_wer": runs["dense"]["wer"]}


def relative_gain(baseline_wer: float, ours_wer: float) -> float:
    """Relative WER reduction ``(b - o) / b`` (the paper's 2%-6.6% is this on test-other)."""
    return (baseline_wer - ours_wer) / baseline_wer if baseline_wer > 0 else float("nan")


# --- claims ------------------------------------------------------------------------------------
CLAIMS = [
    Claim.interval("omni_sparsity", "gain-at-one-model-cost",
                   "Omni-sparsity sub-networks, trained at the cost of one model, have lower "
                   "WER than individually pruned models at 90% sparsity",
                   paper="2-6.6% relative lower WER (LibriSpeech test-other)",
                   prefix="relwer_supernet_vs_pruned_s90", paper_effect=-0.02,
                   unit="relative WER change", percent=True),
]

