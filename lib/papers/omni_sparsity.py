"""Omni-sparsity DNN (Yang et al., ICASSP 2022): one supernet, sub-networks at every sparsity.

Problem. An on-device recogniser must fit many size budgets (phones, watches, ...). Pruning
one model per budget costs one training run per budget. The omni-sparsity supernet trains a
single set of weights ``W`` such that, for *any* per-layer sparsity vector
``s = (s_1, ..., s_L)``, the sub-network ``W ⊙ M(W, s)`` is good, where ``M`` keeps the
largest-magnitude weights of each layer. After training, a search picks ``s`` for a size
budget without retraining. The paper reports its sub-networks beating individually pruned
models by 2%-6.6% relative WER on LibriSpeech test-other, for the training cost of about one
model.

The algorithm as we implement it (``omni_supernet_step``, one step per mini-batch ``B``):

1. ``s_max(t) = s_f + (0 - s_f) (1 - t / t_ramp)^3``: the largest sparsity allowed grows
   with Zhu & Gupta's cubic schedule (``lib.sparse.cubic_sparsity``);
2. sample sub-networks (the *sandwich rule* of BigNAS/slimmable networks): the dense one
   ``s = 0``, the sparsest ``s_l = s_max`` for all ``l``, and ``n_random`` vectors with each
   ``s_l`` drawn uniformly from the choices ``<= s_max``;
3. for each sampled ``s``: masks ``M_l = top-k(|W_l|)`` with ``k = (1 - s_l) n_l``, computed
   from the *current* shared weights (nested: a weight kept at sparsity ``s'`` is kept at
   every ``s < s'``, ``lib.sparse.nested_magnitude_masks``); loss ``L(W ⊙ M; B)``;
   accumulate ``∇_W L / n_sub``;
4. one optimizer step on the shared ``W``.

The baseline prunes one model per sparsity (gradual magnitude pruning with the cubic
schedule, masks recomputed every ``prune_every`` steps, pruned weights stay pruned), each
from the same dense model. The search (``evolutionary_search``) evolves per-layer sparsity
vectors under a parameter budget, scoring each by its dev-set WER through the supernet.

**Our reading** (the paper publishes neither code nor these details; each is a knob of
``OmniSparsityConfig``): unstructured magnitude masks per weight matrix; the Emformer
layers' weight matrices are pruned (``prune_scope``), with one sparsity per linear layer,
i.e. per weight matrix (``granularity``); per-layer choices ``{0, 0.1, ..., 0.9}``;
dense + sparsest + 2 random sub-networks per step with accumulated gradients; masks
recomputed every step; both
approaches start from the same pre-trained dense model (``lib.asr.dense_asr``); the search
scores candidates by their dev-set RNN-T loss (``search_metric``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lib.asr import (
    DENSE_RECIPES,
    ASRModel,
    BucketBatches,
    StepBatchLoader,
    TrainConfig,
    count_parameters,
    dense_asr_artifact,
    dense_asr_key,
    evaluate_wer,
    load_data,
    make_optimizer,
    make_specaugment,
    model_from_artifact,
    paired_bootstrap,
)
from lib.asr.model import cpu_state_dict, training_device
from lib.core import ArtifactCache, ScaleConfigs, derive_seed, make_generator, seed_everything
from lib.core import train_loop as core_train_loop
from lib.core.claims import Claim
from lib.sparse import attach_mask, cubic_sparsity, get_mask, nested_magnitude_masks

SPARSITY_CHOICES = tuple(round(0.1 * i, 1) for i in range(10))  # {0, 0.1, ..., 0.9}


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


# --- the weights that are pruned, grouped into the genes of a sub-network -----------------

def weight_groups(model: ASRModel, scope: str = "encoder",
                  granularity: str = "linear") -> list[tuple[str, list[nn.Linear]]]:
    """``(name, [Linear, ...])`` per gene: one per linear layer, i.e. weight matrix
    (``"linear"``: attention query, key/value, output, FFN in, FFN out of each Emformer
    block), or one per Emformer block (``"block"``); ``"encoder+predictor"`` adds the
    predictor's LSTM."""
    layers: list[tuple[str, list[nn.Linear]]] = []
    for i, block in enumerate(model.rnnt.transcriber.transformer.emformer_layers):
        linears = [(n, m) for n, m in block.named_modules() if isinstance(m, nn.Linear)]
        layers.append((f"emformer.{i}", [m for _, m in linears]))
    if scope == "encoder+predictor":
        lstm = [m for m in model.rnnt.predictor.lstm_layers.modules() if isinstance(m, nn.Linear)]
        layers.append(("predictor", lstm))
    if granularity == "block":
        return layers
    names = {id(m): n for n, m in model.named_modules()}
    return [(names[id(m)].replace("rnnt.transcriber.transformer.emformer_layers.", "block")
             .replace("rnnt.predictor.lstm_layers.", "lstm"), [m])
            for _, mods in layers for m in mods]


def shared_weight(module: nn.Linear) -> torch.Tensor:
    """The dense weight ``W`` under any mask (``parametrizations.weight.original``)."""
    if hasattr(module, "parametrizations") and "weight" in module.parametrizations:
        return module.parametrizations.weight.original
    return module.weight


def attach_dense_masks(groups: Sequence[tuple[str, list[nn.Linear]]]) -> None:
    """Give every pruned matrix a mask of ones (before the optimizer is built)."""
    for _, modules in groups:
        for m in modules:
            attach_mask(m, torch.ones_like(m.weight))


def group_sizes(groups: Sequence[tuple[str, list[nn.Linear]]]) -> list[int]:
    return [sum(m.weight.numel() for m in mods) for _, mods in groups]


def subnet_size(groups, sparsities: Sequence[float], total_params: int) -> int:
    """Non-zero parameters of the sub-network: everything minus the pruned weights
    (``round(s n)`` per matrix, as ``magnitude_mask`` prunes)."""
    pruned = sum(int(round(s * m.weight.numel()))
                 for (_, mods), s in zip(groups, sparsities, strict=True) for m in mods)
    return total_params - pruned


@torch.no_grad()
def apply_subnet(groups, sparsities: Sequence[float], *,
                 keep_pruned: bool = False) -> None:
    """Mask each matrix to its group's sparsity by the magnitude of its current weights
    (step 3). ``keep_pruned`` ranks ``|W ⊙ M_old|`` so pruned weights stay pruned (the
    gradual-pruning baseline); otherwise ``|W|`` (the supernet's shared weights)."""
    for (_, mods), s in zip(groups, sparsities, strict=True):
        for m in mods:
            w = shared_weight(m)
            if keep_pruned and get_mask(m) is not None:
                w = w * get_mask(m)
            attach_mask(m, nested_magnitude_masks(w, [s])[0])


@torch.no_grad()
def nested_subnet_masks(groups, subnets: Sequence[Sequence[float]]) -> list[list[torch.Tensor]]:
    """Masks of several sub-networks from ONE ranking of each matrix (nested across
    sub-networks: if ``s_l <= s'_l`` then ``M_l(s') ⊆ M_l(s)``). Returns, per sub-network,
    the masks of all pruned matrices in ``groups`` order."""
    per_subnet: list[list[torch.Tensor]] = [[] for _ in subnets]
    for g, (_, mods) in enumerate(groups):
        for m in mods:
            masks = nested_magnitude_masks(shared_weight(m), [s[g] for s in subnets])
            for k, mask in enumerate(masks):
                per_subnet[k].append(mask)
    return per_subnet


def set_masks(groups, masks: Sequence[torch.Tensor]) -> None:
    modules = [m for _, mods in groups for m in mods]
    for m, mask in zip(modules, masks, strict=True):
        attach_mask(m, mask)


# --- step 1-2: which sub-networks a step trains -------------------------------------------

def max_sparsity(step: int, config: OmniSparsityConfig) -> float:
    """``s_max(t)``: cubic ramp from 0 to ``max(choices)`` over ``ramp_fraction`` of training."""
    end = max(1, int(round(config.ramp_fraction * config.supernet_steps)))
    return cubic_sparsity(step, max(config.sparsity_choices), 0, end) if end > 0 else \
        max(config.sparsity_choices)


def sample_subnets(step: int, n_genes: int, config: OmniSparsityConfig,
                   generator: torch.Generator) -> list[tuple[float, ...]]:
    """The sandwich: dense, sparsest (all genes at the largest allowed choice) and
    ``n_random`` random vectors over the allowed choices."""
    allowed = [c for c in sorted(config.sparsity_choices)
               if c <= max_sparsity(step, config) + 1e-9]
    subnets: list[tuple[float, ...]] = []
    if config.sandwich:
        subnets.append((0.0,) * n_genes)
        subnets.append((allowed[-1],) * n_genes)
    for _ in range(config.n_random):
        idx = torch.randint(len(allowed), (n_genes,), generator=generator)
        subnets.append(tuple(allowed[int(i)] for i in idx))
    if not subnets:
        raise ValueError("no sub-network to train: enable sandwich or set n_random >= 1")
    return subnets


# --- step 3-4: one supernet update ---------------------------------------------------------

def omni_supernet_step(model: nn.Module, groups, batch, subnets: Sequence[Sequence[float]],
                       optimizer: torch.optim.Optimizer, *, clip_grad_norm: float = 10.0,
                       ddp: nn.Module | None = None) -> dict[str, float]:
    """Accumulate ``∇_W L(W ⊙ M(W, s)) / n`` over the sampled sub-networks ``s``, then one
    optimizer step on the shared weights. Returns the mean and per-role losses."""
    from contextlib import nullcontext

    optimizer.zero_grad(set_to_none=True)
    all_masks = nested_subnet_masks(groups, subnets)  # from the current W (before the step)
    forward = ddp if ddp is not None else model
    losses = []
    for k, masks in enumerate(all_masks):
        set_masks(groups, masks)
        # under DDP, synchronise gradients only on the last backward of the step
        sync = nullcontext() if ddp is None or k == len(all_masks) - 1 else ddp.no_sync()
        with sync:
            loss = forward(batch) / len(all_masks)
            loss.backward()
        losses.append(loss.detach().item() * len(all_masks))
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    optimizer.step()
    out = {"loss": sum(losses) / len(losses), "grad_norm": float(norm)}
    out.update({f"loss_{i}": v for i, v in enumerate(losses)})
    return out


def _finetune_config(config: OmniSparsityConfig, steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=config.batch_size, lr=config.lr,
                       warmup_steps=config.warmup_steps, decay="cosine")


def _prepare(artifact: dict[str, Any], config: OmniSparsityConfig, train_cfg: TrainConfig):
    model, _ = model_from_artifact(artifact)
    model.specaugment = make_specaugment(train_cfg)
    model.to(training_device())
    groups = weight_groups(model, config.prune_scope, config.granularity)
    attach_dense_masks(groups)  # before the optimizer: it must see the masked parameters
    return model, groups


def train_supernet(artifact: dict[str, Any], train_set, config: OmniSparsityConfig, seed: int,
                   *, ckpt_dir: str | Path | None = None, run_key: str | None = None,
                   show_progress: bool | None = None) -> dict[str, Any]:
    """Omni-sparsity training from the dense model: ``supernet_steps`` sandwich steps."""
    from lib.core.distributed import rank_and_world, wrap_ddp

    seed_everything(seed)
    train_cfg = _finetune_config(config, config.supernet_steps)
    model, groups = _prepare(artifact, config, train_cfg)
    opt, sched = make_optimizer(model, train_cfg)
    rank, world = rank_and_world()
    loader = StepBatchLoader(train_set, BucketBatches(train_set.lengths(), config.batch_size,
                                                      derive_seed(seed, "super")),
                             config.supernet_steps, rank=rank, world=world,
                             num_workers=config.num_workers)
    ddp = wrap_ddp(model) if world > 1 else None
    n_genes = len(groups)
    device = training_device()

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        g = make_generator(derive_seed(seed, "subnets", step))  # depends on (seed, step) only
        subnets = sample_subnets(step, n_genes, config, g)
        batch = loader.get(step).to(device)
        logs = omni_supernet_step(model, groups, batch, subnets, opt, ddp=ddp)
        sched.step()
        return {**logs, "s_max": max_sparsity(step, config), "n_subnets": len(subnets)}

    result = core_train_loop(step_fn, config.supernet_steps,
                             state={"model": model, "opt": opt, "sched": sched},
                             ckpt_dir=ckpt_dir, run_key=run_key,
                             ckpt_every=max(1, config.supernet_steps // 20)
                             if ckpt_dir else 0, desc="omni supernet",
                             show_progress=show_progress)
    apply_subnet(groups, (0.0,) * n_genes)
    return {"state_dict": cpu_state_dict(model), "history": result.history,
            "train_seconds": result.wall_time_s, "steps": result.steps,
            "passes": sum(int(h["n_subnets"]) for h in result.history)}


def gradual_prune(artifact: dict[str, Any], train_set, config: OmniSparsityConfig,
                  sparsity: float, seed: int, *, ckpt_dir: str | Path | None = None,
                  run_key: str | None = None,
                  show_progress: bool | None = None) -> dict[str, Any]:
    """The baseline: one model pruned to uniform ``sparsity`` (Zhu & Gupta's cubic schedule
    over ``prune_ramp_fraction`` of ``pruned_steps``, masks updated every ``prune_every``)."""
    from lib.core.distributed import rank_and_world, wrap_ddp

    seed_everything(seed)
    train_cfg = _finetune_config(config, config.pruned_steps)
    model, groups = _prepare(artifact, config, train_cfg)
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


def evolutionary_search(fitness: Callable[[tuple[float, ...]], float],
                        size: Callable[[tuple[float, ...]], int], budget: int, n_genes: int,
                        choices: Sequence[float], *, population: int, generations: int,
                        mutation_prob: float, generator: torch.Generator,
                        initial: Sequence[tuple[float, ...]] = (),
                        mutation: str = "step") -> dict[str, Any]:
    """Minimise ``fitness`` over per-gene sparsities with ``size(s) <= budget``.

    The first population holds ``initial`` and mutants of it (random vectors when
    ``initial`` is empty). Each generation keeps the best half (parents), and fills the
    population with children:
    uniform crossover of two parents, then each gene mutated with ``mutation_prob`` (moved
    one choice up or down with ``mutation="step"``, redrawn with ``"resample"``); a child
    over budget is *repaired* by raising a random gene one choice at a time. Every
    candidate evaluated satisfies the budget; fitness values are memoised.
    """
    choices = sorted(choices)
    if population < 2 or generations < 1:
        raise ValueError(f"need population >= 2 and generations >= 1, got {population}, "
                         f"{generations}")
    if size(tuple([choices[-1]] * n_genes)) > budget:
        raise ValueError(f"budget {budget} is below the sparsest sub-network's size "
                         f"{size(tuple([choices[-1]] * n_genes))}: no sub-network fits")

    def rand_int(n: int) -> int:
        return int(torch.randint(n, (1,), generator=generator))

    def repair(genes: list[float]) -> tuple[float, ...]:
        while size(tuple(genes)) > budget:
            raisable = [i for i, g in enumerate(genes) if g < choices[-1]]
            i = raisable[rand_int(len(raisable))]
            genes[i] = choices[choices.index(genes[i]) + 1]
        return tuple(genes)

    memo: dict[tuple[float, ...], float] = {}
    trace: list[dict[str, Any]] = []
    now = {"generation": 0}

    def score(genes: tuple[float, ...]) -> float:
        if genes not in memo:
            memo[genes] = float(fitness(genes))
            trace.append({"genes": genes, "size": size(genes), "fitness": memo[genes],
                          "generation": now["generation"]})
        return memo[genes]

    def mutate(genes: list[float], prob: float) -> list[float]:
        for i in range(n_genes):
            if float(torch.rand(1, generator=generator)) < prob:
                if mutation == "resample":
                    genes[i] = choices[rand_int(len(choices))]
                else:
                    j = choices.index(genes[i]) + (1 if rand_int(2) else -1)
                    genes[i] = choices[min(max(j, 0), len(choices) - 1)]
        return genes

    pop = [repair(list(g)) for g in initial][:population]
    seeds = list(pop)
    while len(pop) < population:
        if seeds:
            pop.append(repair(mutate(list(seeds[rand_int(len(seeds))]), max(mutation_prob, 0.2))))
        else:
            pop.append(repair([choices[rand_int(len(choices))] for _ in range(n_genes)]))
    for generation in range(generations):
        now["generation"] = generation
        ranked = sorted(set(pop), key=lambda g: (score(g), size(g), g))
        parents = ranked[:max(2, population // 2)]
        children = []
        while len(parents) + len(children) < population:
            a, b = parents[rand_int(len(parents))], parents[rand_int(len(parents))]
            child = mutate([a[i] if rand_int(2) else b[i] for i in range(n_genes)],
                           mutation_prob)
            children.append(repair(child))
        pop = parents + children
    now["generation"] = generations
    best = min(set(pop), key=lambda g: (score(g), size(g), g))
    return {"best": best, "fitness": memo[best], "size": size(best), "trace": trace,
            "evaluations": len(memo)}


# --- the whole experiment, with artifacts ---------------------------------------------------


def _train_one(kind: str, config: OmniSparsityConfig, seed: int, dense_seed: int,
               sparsity: float, ckpt_dir: str | None, run_key: str | None,
               show_progress: bool | None = None,
               loaded: tuple[dict[str, Any], Any] | None = None) -> dict[str, Any]:
    """Train the supernet (``kind="supernet"``) or one pruned model (``"pruned"``)."""
    if loaded is None:
        recipe = DENSE_RECIPES[config.dense_scale]
        dense = dense_asr_artifact(recipe, dense_seed)
        sets, _ = load_data(recipe, dense_seed, tokenizer=model_from_artifact(dense)[1])
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
    recipe = DENSE_RECIPES[config.dense_scale]
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
    recipe = DENSE_RECIPES[config.dense_scale]
    dense = dense_asr_artifact(recipe, dense_seed, cache)
    sets, tokenizer = load_data(recipe, dense_seed, tokenizer=model_from_artifact(dense)[1])
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


def split_names(config: OmniSparsityConfig) -> tuple[str, tuple[str, ...]]:
    """``(dev split, test splits)``, the hardest test split first: unseen voices then the
    training voices on the digit corpus; LibriSpeech test-other then test-clean."""
    if DENSE_RECIPES[config.dense_scale].data == "librispeech":
        return "dev-other", ("test-other", "test-clean")
    return "dev", ("test", "test_seen")


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
        population=config.population, generations=config.generations,
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


__all__ = ["CONFIGS", "OmniSparsityConfig", "apply_subnet", "compare_approaches",
           "evaluate_levels", "finetuned_cached",
           "evolutionary_search", "finetuned_artifacts", "gradual_prune", "max_sparsity",
           "nested_subnet_masks", "omni_supernet_step", "relative_gain", "run",
           "sample_subnets", "search_for_budget", "subnet_size", "train_supernet",
           "split_names", "training_costs", "weight_groups"]


# --- claims ------------------------------------------------------------------------------------
CLAIMS = [
    Claim.interval("omni_sparsity", "gain-at-one-model-cost",
                   "Omni-sparsity sub-networks, trained at the cost of one model, have lower "
                   "WER than individually pruned models at 90% sparsity",
                   paper="2-6.6% relative lower WER (LibriSpeech test-other)",
                   prefix="relwer_supernet_vs_pruned_s90", paper_effect=-0.02,
                   unit="relative WER change", percent=True),
]
#: Full scale trains data-parallel (``--gpus N``).
DATA_PARALLEL = True
