"""Omni-sparsity DNN (Yang et al., ICASSP 2022): the supernet training and the search.

Problem. One set of weights ``W`` such that, for *any* per-layer sparsity vector
``s = (s_1, ..., s_L)``, the sub-network ``W ⊙ M(W, s)`` is good, where ``M`` keeps the
largest-magnitude weights of each layer; after training, a search picks ``s`` for a size
budget without retraining.

One supernet step (``omni_supernet_step``; ``train_supernet`` runs them), per mini-batch ``B``:

1. ``s_max(t) = s_f + (0 - s_f) (1 - t / t_ramp)^3``: the largest sparsity allowed grows
   with Zhu & Gupta's cubic schedule (``max_sparsity``, ``lib.sparse.cubic_sparsity``);
2. sample sub-networks (the *sandwich rule* of BigNAS/slimmable networks,
   ``sample_subnets``): the dense one ``s = 0``, the sparsest ``s_l = s_max`` for all
   ``l``, and ``n_random`` vectors with each ``s_l`` drawn uniformly from the choices
   ``<= s_max``;
3. for each sampled ``s``: masks ``M_l = top-k(|W_l|)`` with ``k = (1 - s_l) n_l``, computed
   from the *current* shared weights (nested: a weight kept at sparsity ``s'`` is kept at
   every ``s < s'``, ``nested_subnet_masks``); loss ``L(W ⊙ M; B)``; accumulate
   ``∇_W L / n_sub``;
4. one optimizer step on the shared ``W``.

The search (``evolutionary_search``) evolves per-layer sparsity vectors under a parameter
budget, scoring each by a dev-set fitness of the supernet's sub-network.

``config`` arguments are an ``OmniSparsityConfig`` (``experiment.py``); this module reads
only its knobs, so that it does not import the experiment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lib.asr import (
    ASRModel,
    BucketBatches,
    StepBatchLoader,
    TrainConfig,
    make_optimizer,
    make_specaugment,
    model_from_artifact,
)
from lib.asr.model import cpu_state_dict, training_device
from lib.core import derive_seed, make_generator, seed_everything
from lib.core import train_loop as core_train_loop
from lib.sparse import attach_mask, cubic_sparsity, get_mask, nested_magnitude_masks

SPARSITY_CHOICES = tuple(round(0.1 * i, 1) for i in range(10))  # {0, 0.1, ..., 0.9}


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

def max_sparsity(step: int, config: Any) -> float:
    """``s_max(t)``: cubic ramp from 0 to ``max(choices)`` over ``ramp_fraction`` of training."""
    end = max(1, int(round(config.ramp_fraction * config.supernet_steps)))
    return cubic_sparsity(step, max(config.sparsity_choices), 0, end) if end > 0 else \
        max(config.sparsity_choices)


def sample_subnets(step: int, n_genes: int, config: Any,
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


def finetune_train_config(config: Any, steps: int) -> TrainConfig:
    """The optimisation both approaches share: ``steps`` AdamW steps, warm-up, cosine decay."""
    return TrainConfig(steps=steps, batch_size=config.batch_size, lr=config.lr,
                       warmup_steps=config.warmup_steps, decay="cosine")


def prepare_model(artifact: dict[str, Any], config: Any, train_cfg: TrainConfig):
    """``(model, groups)``: the dense model on the training device, SpecAugment on, a mask of
    ones on every pruned matrix."""
    model, _ = model_from_artifact(artifact)
    model.specaugment = make_specaugment(train_cfg)
    model.to(training_device())
    groups = weight_groups(model, config.prune_scope, config.granularity)
    attach_dense_masks(groups)  # before the optimizer: it must see the masked parameters
    return model, groups


def train_supernet(artifact: dict[str, Any], train_set, config: Any, seed: int,
                   *, ckpt_dir: str | Path | None = None, run_key: str | None = None,
                   show_progress: bool | None = None) -> dict[str, Any]:
    """Omni-sparsity training from the dense model: ``supernet_steps`` sandwich steps."""
    from lib.core.distributed import rank_and_world, wrap_ddp

    seed_everything(seed)
    train_cfg = finetune_train_config(config, config.supernet_steps)
    model, groups = prepare_model(artifact, config, train_cfg)
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


# --- after training: the search of per-layer sparsities for a budget ----------------------

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

