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
    """``s_max(t)``: cubic ramp from 0 to ``max(choices)`` over ``ramp_fraction`` of training
    (``ramp_fraction = 0``: every choice from the first step)."""
    if config.ramp_fraction <= 0:
        return max(config.sparsity_choices)
    end = max(1, int(round(config.ramp_fraction * config.supernet_steps)))
    return cubic_sparsity(step, max(config.sparsity_choices), 0, end)


def _jitter(level: float, choices: Sequence[float], cap: float, n_genes: int, prob: float,
            generator: torch.Generator) -> tuple[float, ...]:
    """A uniform member at ``level`` with each gene moved one choice up or down with
    probability ``prob`` (never above ``cap``)."""
    genes = []
    for _ in range(n_genes):
        g = level
        if prob > 0 and float(torch.rand(1, generator=generator)) < prob:
            j = choices.index(level) + (1 if int(torch.randint(2, (1,), generator=generator))
                                        else -1)
            if 0 <= j < len(choices) and choices[j] <= cap + 1e-9:
                g = choices[j]
        genes.append(g)
    return tuple(genes)


def sample_subnets(step: int, n_genes: int, config: Any,
                   generator: torch.Generator) -> list[tuple[float, ...]]:
    """The members a step trains, all distinct.

    ``config.sampling = "uniform"`` (our reading, default): each member has ONE sparsity
    for all its genes, so every level the chapter reports is trained as itself. The
    sandwich gives the dense member and the sparsest allowed level; ``n_random`` more levels
    are drawn *without replacement* from the remaining allowed ones (``member_levels``:
    the reported ``levels`` or every ``sparsity_choices``), each optionally jittered per
    layer (``layer_jitter``: a gene moves one choice with that probability). While the
    ramp allows few levels, a step trains fewer members (never one member twice).

    ``"per-layer"`` (the earlier reading): every gene of a random member drawn
    independently, whose parameter-weighted sparsity concentrates near the mean choice.
    """
    cap = max_sparsity(step, config)
    choices = sorted(config.sparsity_choices)
    pool = config.levels if config.member_levels == "levels" else choices
    allowed = sorted({c for c in pool if c <= cap + 1e-9} | {0.0})
    subnets: list[tuple[float, ...]] = []

    def add(member: tuple[float, ...]) -> None:
        if member not in subnets:
            subnets.append(member)

    if config.sandwich:
        add((0.0,) * n_genes)
        add((allowed[-1],) * n_genes)
    if config.sampling == "per-layer":
        allowed_choices = [c for c in choices if c <= cap + 1e-9]
        for _ in range(config.n_random):
            idx = torch.randint(len(allowed_choices), (n_genes,), generator=generator)
            add(tuple(allowed_choices[int(i)] for i in idx))
    else:
        used = {m[0] for m in subnets}
        rest = [c for c in allowed if c not in used]
        order = torch.randperm(len(rest), generator=generator).tolist()
        for i in order[:config.n_random]:
            member = _jitter(rest[i], choices, cap, n_genes, config.layer_jitter, generator)
            add(member if member not in subnets else (rest[i],) * n_genes)
    if not subnets:
        raise ValueError("no sub-network to train: enable sandwich or set n_random >= 1")
    return subnets


def members_per_step(config: Any, n_genes: int = 1) -> list[int]:
    """How many members each supernet step trains (deterministic: it depends on the ramp
    only), for ``config.supernet_steps`` steps."""
    g = torch.Generator().manual_seed(0)
    return [len(sample_subnets(t, n_genes, config, g)) for t in range(config.supernet_steps)]


# --- step 3-4: one supernet update ---------------------------------------------------------

def lattice_distillation(student: torch.Tensor, teacher: torch.Tensor,
                         logit_lengths: torch.Tensor, target_lengths: torch.Tensor
                         ) -> torch.Tensor:
    """``KL(p_teacher || p_student)`` over the output symbols at every valid node ``(t, u)``
    of the RNN-T lattice, averaged over nodes (in-place distillation, BigNAS: the dense
    member's distribution is the sub-networks' soft target, with no gradient into it)."""
    t = torch.arange(student.shape[1], device=student.device)[None, :, None]
    u = torch.arange(student.shape[2], device=student.device)[None, None, :]
    valid = (t < logit_lengths[:, None, None]) & (u <= target_lengths[:, None, None])
    log_p_s = torch.log_softmax(student.float(), dim=-1)
    log_p_t = torch.log_softmax(teacher.detach().float(), dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    return (kl * valid).sum() / valid.sum().clamp_min(1)


def omni_supernet_step(model: nn.Module, groups, batch, subnets: Sequence[Sequence[float]],
                       optimizer: torch.optim.Optimizer, *, clip_grad_norm: float = 10.0,
                       ddp: nn.Module | None = None, distill: float = 0.0,
                       member_seed: int | None = None) -> dict[str, float]:
    """Accumulate ``∇_W L(W ⊙ M(W, s)) / n`` over the sampled sub-networks ``s``, then one
    optimizer step on the shared weights. Returns the mean and per-member losses.

    ``distill`` (in-place distillation, BigNAS) replaces each non-dense member's loss by
    ``(1 - distill) L_RNNT + distill KL(dense || member)`` on the lattice; the first member
    must then be the dense one. With ``member_seed`` every member sees the same SpecAugment
    masks and dropout draws (the random state is reset before each forward)."""
    if distill and (not subnets or any(s != 0.0 for s in subnets[0])):
        raise ValueError("in-place distillation needs the dense member first (sandwich=True)")
    optimizer.zero_grad(set_to_none=True)
    all_masks = nested_subnet_masks(groups, subnets)  # from the current W (before the step)
    forward = ddp if ddp is not None else model
    losses, teacher = [], None
    for k, masks in enumerate(all_masks):
        set_masks(groups, masks)
        if member_seed is not None:
            torch.manual_seed(member_seed)
        # under DDP, synchronise gradients only on the last backward of the step
        sync = nullcontext() if ddp is None or k == len(all_masks) - 1 else ddp.no_sync()
        with sync:
            if distill:
                rnnt, logits, logit_lengths = forward(batch, return_logits=True)
                if k == 0:
                    teacher, member_loss = logits.detach(), rnnt
                else:
                    kd = lattice_distillation(logits, teacher, logit_lengths,
                                              batch.target_lengths)
                    member_loss = (1 - distill) * rnnt + distill * kd
            else:
                rnnt = member_loss = forward(batch)
            (member_loss / len(all_masks)).backward()
        losses.append(rnnt.detach().item())
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    optimizer.step()
    out = {"loss": sum(losses) / len(losses), "grad_norm": float(norm)}
    out.update({f"loss_{i}": v for i, v in enumerate(losses)})
    return out


def finetune_train_config(config: Any, steps: int) -> TrainConfig:
    """The optimisation both approaches share: ``steps`` AdamW steps, warm-up, then
    ``config.decay`` ("constant": a run's state after ``k`` steps is the same model a
    ``k``-step run would give, so one run yields both supernet budgets), the SpecAugment of
    ``config.specaugment``."""
    return TrainConfig(steps=steps, batch_size=config.batch_size, lr=config.lr,
                       warmup_steps=config.warmup_steps, decay=config.decay,
                       specaugment=config.specaugment)


def prepare_model(artifact: dict[str, Any], config: Any, train_cfg: TrainConfig):
    """``(model, groups)``: the dense model on the training device, SpecAugment on, a mask of
    ones on every pruned matrix."""
    model, _ = model_from_artifact(artifact)
    model.specaugment = make_specaugment(train_cfg)
    model.to(training_device())
    groups = weight_groups(model, config.prune_scope, config.granularity)
    attach_dense_masks(groups)  # before the optimizer: it must see the masked parameters
    return model, groups


def supernet_budget_steps(config: Any, passes: Sequence[int]) -> list[int]:
    """Steps after which the supernet has spent each of ``passes`` forward/backward passes
    (a step costs one pass per member; the ramp, over ``ramp_fraction`` of
    ``config.supernet_steps``, trains fewer members early)."""
    counts = members_per_step(config)
    out, total, step = [], 0, 0
    for target in sorted(passes):
        while total < target:
            total += counts[step] if step < len(counts) else counts[-1]
            step += 1
        out.append(step)
    return out


@torch.no_grad()
def dev_losses(model: nn.Module, groups, levels: Sequence[float], dev_set,
               batch_size: int = 64) -> dict[float, float]:
    """Mean RNN-T loss per utterance of each uniform sub-network on ``dev_set`` (eval mode;
    the masks in place before the call come back after it)."""
    from lib.asr.model import model_device

    saved = [get_mask(m).clone() for _, mods in groups for m in mods]
    was_training = model.training
    model.eval()
    out = {}
    for s in levels:
        apply_subnet(groups, (s,) * len(groups))
        total, n = 0.0, 0
        for batch in dev_set.batches(batch_size):
            total += float(model(batch.to(model_device(model)))) * len(batch)
            n += len(batch)
        out[s] = total / n
    set_masks(groups, saved)
    model.train(was_training)
    return out


def train_supernet(artifact: dict[str, Any], train_set, config: Any, seed: int,
                   *, ckpt_dir: str | Path | None = None, run_key: str | None = None,
                   show_progress: bool | None = None, steps: int | None = None,
                   snapshot_steps: Sequence[int] = (), dev_set=None,
                   curve_every: int = 0) -> dict[str, Any]:
    """Omni-sparsity training from the dense model: ``steps`` (default
    ``config.supernet_steps``) sandwich steps; the ramp spans ``ramp_fraction`` of
    ``config.supernet_steps``. ``snapshot_steps``: also return the weights after those
    steps (``"snapshots": {step: state dict}``); ``dev_set`` with ``curve_every``: the dev
    loss of every uniform level in ``config.levels`` every ``curve_every`` steps
    (``"curve"``)."""
    from lib.core.distributed import rank_and_world, wrap_ddp

    steps = config.supernet_steps if steps is None else steps
    seed_everything(seed)
    train_cfg = finetune_train_config(config, steps)
    model, groups = prepare_model(artifact, config, train_cfg)
    opt, sched = make_optimizer(model, train_cfg)
    rank, world = rank_and_world()
    loader = StepBatchLoader(train_set, BucketBatches(train_set.lengths(), config.batch_size,
                                                      derive_seed(seed, "super")),
                             steps, rank=rank, world=world, num_workers=config.num_workers)
    ddp = wrap_ddp(model) if world > 1 else None
    n_genes = len(groups)
    device = training_device()
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    curve: list[dict[str, Any]] = []
    passes = {"n": 0}

    def record_curve(done: int) -> None:
        if dev_set is not None and curve_every:
            losses = dev_losses(model, groups, config.levels, dev_set, config.eval_batch_size)
            curve.append({"step": done, "passes": passes["n"],
                          **{f"dev_loss_{s:g}": v for s, v in losses.items()}})

    record_curve(0)

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        g = make_generator(derive_seed(seed, "subnets", step))  # depends on (seed, step) only
        subnets = sample_subnets(step, n_genes, config, g)
        batch = loader.get(step).to(device)
        logs = omni_supernet_step(model, groups, batch, subnets, opt, ddp=ddp,
                                  distill=config.distill,
                                  member_seed=derive_seed(seed, "members", step))
        sched.step()
        passes["n"] += len(subnets)
        done = step + 1
        if done in snapshot_steps:
            apply_subnet(groups, (0.0,) * n_genes)
            # a copy: on the CPU ``cpu_state_dict`` returns the live tensors, which the
            # following steps would change in place
            snapshots[done] = {k: v.clone() for k, v in cpu_state_dict(model).items()}
        if curve_every and (done % curve_every == 0 or done == steps or done in snapshot_steps):
            record_curve(done)
        return {**logs, "s_max": max_sparsity(step, config), "n_subnets": len(subnets),
                "mean_sparsity": sum(sum(s) / n_genes for s in subnets) / len(subnets)}

    result = core_train_loop(step_fn, steps,
                             state={"model": model, "opt": opt, "sched": sched},
                             ckpt_dir=ckpt_dir, run_key=run_key,
                             ckpt_every=max(1, steps // 20) if ckpt_dir else 0,
                             desc="omni supernet", show_progress=show_progress)
    apply_subnet(groups, (0.0,) * n_genes)
    return {"state_dict": cpu_state_dict(model), "history": result.history,
            "train_seconds": result.wall_time_s, "steps": result.steps,
            "passes": sum(int(h["n_subnets"]) for h in result.history),
            "snapshots": snapshots, "curve": curve}


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



__all__ = ["SPARSITY_CHOICES", "apply_subnet", "attach_dense_masks", "dev_losses",
           "evolutionary_search", "finetune_train_config", "group_sizes",
           "lattice_distillation", "max_sparsity", "members_per_step", "nested_subnet_masks",
           "omni_supernet_step", "prepare_model", "sample_subnets", "set_masks",
           "shared_weight", "subnet_size", "supernet_budget_steps", "train_supernet",
           "weight_groups"]
