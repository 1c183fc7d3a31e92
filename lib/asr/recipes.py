"""The shared dense Emformer RNN-T per scale, trained once and kept in the artifact cache.

Chapters that start from a trained speech recogniser (omni-sparsity, noisy training) call
``dense_asr(scale, seed)`` and get the same model: smoke and tutorial scales train the small
Emformer RNN-T on the synthesised digit corpus; full scale trains torchaudio's
``emformer_rnnt_base`` on LibriSpeech 960 h with DDP over all visible GPUs. The recipes
themselves live in ``lib.asr.scales``: the artifact's key holds their values, so editing one
scale's recipe rebuilds that scale's model only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from lib.core import ArtifactCache, seed_everything

from .corpus import DIGIT_WORDS, digit_corpus
from .data import UtteranceSet, corpus_sets
from .model import ASRModel, RNNTModelConfig, cpu_state_dict
from .scales import DENSE_RECIPES, DenseASRRecipe
from .text import SentencePieceTokenizer, WordTokenizer, tokenizer_from_state
from .training import evaluate_wer, make_specaugment, train_asr

ARTIFACT_NAME = "asr-dense-rnnt"



def load_data(recipe: DenseASRRecipe, seed: int = 0,
              tokenizer=None) -> tuple[dict[str, Any], Any]:
    """``({split: utterance set}, tokenizer)``; digits: train/dev/test/test_seen;
    LibriSpeech: train plus each dev/test split by name."""
    if recipe.data == "digits":
        tokenizer = tokenizer or WordTokenizer(DIGIT_WORDS)
        return corpus_sets(digit_corpus(recipe.corpus, seed), tokenizer), tokenizer
    from lib.core.paths import data_dir

    from .librispeech import LibriSpeechSet, read_manifest

    root = data_dir(recipe.librispeech_root or None)
    if tokenizer is None:
        texts = [u.transcript for s in recipe.train_splits for u in read_manifest(root, s)]
        tokenizer = SentencePieceTokenizer.train(texts, recipe.sentencepiece_vocab)
    sets = {"train": LibriSpeechSet(root, recipe.train_splits, tokenizer)}
    for split in (*recipe.dev_splits, *recipe.test_splits):
        sets[split] = LibriSpeechSet(root, (split,), tokenizer)
    return sets, tokenizer


def _cmvn_subset(train_set, recipe: DenseASRRecipe, seed: int):
    n = len(train_set)
    if not recipe.cmvn_utterances or recipe.cmvn_utterances >= n:
        return [train_set.features[i] for i in range(n)]
    g = torch.Generator().manual_seed(seed)
    return [train_set.features[int(i)] for i in torch.randperm(n, generator=g)[
        :recipe.cmvn_utterances]]


def eval_splits(recipe: DenseASRRecipe) -> tuple[str, ...]:
    return ("dev", "test", "test_seen") if recipe.data == "digits" else \
        (*recipe.dev_splits, *recipe.test_splits)


def train_dense(recipe: DenseASRRecipe, seed: int = 0, *, ckpt_dir: str | Path | None = None,
                run_key: str | None = None, show_progress: bool | None = None
                ) -> dict[str, Any]:
    """Train the dense recogniser in this process (one rank of DDP when launched so);
    returns the artifact dict (state dict, configs, tokenizer, history, WERs)."""
    seed_everything(seed)
    sets, tokenizer = load_data(recipe, seed)
    if tokenizer.num_symbols != recipe.model.num_symbols:
        raise ValueError(f"the tokenizer has {tokenizer.num_symbols} symbols but the model "
                         f"config {recipe.model.num_symbols}")
    model = ASRModel(recipe.model, make_specaugment(recipe.train))
    model.cmvn.fit(_cmvn_subset(sets["train"], recipe, seed))
    result = train_asr(model, sets["train"], recipe.train, seed, ckpt_dir=ckpt_dir,
                       run_key=run_key, desc="dense RNN-T", show_progress=show_progress)
    wers = {split: evaluate_wer(model, sets[split], tokenizer,
                                batch_size=recipe.eval_batch_size)
            for split in eval_splits(recipe) if split in sets and len(sets[split])}
    return {"state_dict": cpu_state_dict(model), "model_config": recipe.model.__dict__.copy(),
            "tokenizer": tokenizer.state(), "history": result.history,
            "train_seconds": result.wall_time_s, "steps": result.steps, "wer": wers,
            "seed": seed}


def _artifact_config(recipe: DenseASRRecipe, seed: int) -> dict[str, Any]:
    return {"recipe": recipe, "seed": seed}


def dense_asr_key(recipe: DenseASRRecipe, seed: int = 0,
                  cache: ArtifactCache | None = None) -> str:
    """The dense model's artifact key: models fine-tuned from it list it in ``depends_on``."""
    return (cache or ArtifactCache()).key(ARTIFACT_NAME, _artifact_config(recipe, seed),
                                          code=[train_dense])


def dense_asr_cached(recipe: DenseASRRecipe, seed: int = 0,
                     cache: ArtifactCache | None = None) -> bool:
    """Whether the dense model for ``(recipe, seed)`` is already in the artifact cache."""
    return (cache or ArtifactCache()).contains(ARTIFACT_NAME, _artifact_config(recipe, seed),
                                               code=[train_dense])


def dense_asr_artifact(recipe: DenseASRRecipe, seed: int = 0,
                       cache: ArtifactCache | None = None) -> dict[str, Any]:
    """The trained dense recogniser's artifact, built once per ``(recipe, seed, code)``.

    Full scale trains with DDP over ``recipe.gpus`` workers (default: ``--gpus`` of the
    runner, else every visible GPU) and checkpoints into the run's own folder, so a killed
    run resumes.
    """
    from lib.core.distributed import requested_workers, run_data_parallel

    cache = cache or ArtifactCache()

    def build(ckpt_dir: Path, run_key: str) -> dict[str, Any]:
        if recipe.data != "librispeech":
            return train_dense(recipe, seed)
        return run_data_parallel(train_dense, requested_workers(recipe.gpus or None), recipe,
                                 seed, workdir=ckpt_dir, ckpt_dir=str(ckpt_dir),
                                 run_key=run_key)

    return cache.get_or_train(ARTIFACT_NAME, _artifact_config(recipe, seed), build,
                              code=[train_dense])


def model_from_artifact(artifact: dict[str, Any]) -> tuple[ASRModel, Any]:
    """``(ASRModel in eval mode, tokenizer)`` from a dense artifact."""
    model = ASRModel(RNNTModelConfig(**artifact["model_config"]))
    model.load_state_dict(artifact["state_dict"])
    return model.eval(), tokenizer_from_state(artifact["tokenizer"])


def dense_recipe(scale: str, train_batch_size: int = 0, **recipe_knobs: Any) -> DenseASRRecipe:
    """The dense recipe at ``scale`` with ``recipe_knobs`` replaced and, when
    ``train_batch_size`` is not 0, its training batch (a dry run's small batch; the
    artifact's key holds the recipe, so such a model never stands in for the real one)."""
    recipe = DENSE_RECIPES.get(scale, **recipe_knobs)
    if train_batch_size:
        recipe = replace(recipe, train=replace(recipe.train, batch_size=train_batch_size))
    return recipe


def dense_asr(scale: str, seed: int = 0, cache: ArtifactCache | None = None,
              train_batch_size: int = 0, **recipe_knobs: Any
              ) -> tuple[ASRModel, Any, dict[str, Any]]:
    """``(model, tokenizer, artifact)`` of the shared dense recogniser at ``scale``
    (``train_batch_size``, ``recipe_knobs``: see ``dense_recipe``)."""
    recipe = dense_recipe(scale, train_batch_size, **recipe_knobs)
    artifact = dense_asr_artifact(recipe, seed, cache)
    model, tokenizer = model_from_artifact(artifact)
    return model, tokenizer, artifact


__all__ = ["ARTIFACT_NAME", "DENSE_RECIPES", "DenseASRRecipe", "UtteranceSet", "dense_asr",
           "dense_asr_artifact", "dense_asr_cached", "dense_asr_key", "dense_recipe", "eval_splits",
           "load_data", "model_from_artifact", "train_dense"]
