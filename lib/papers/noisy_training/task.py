"""The task every condition is trained on: the data (the chapter's own small digit corpus,
or LibriSpeech at full scale), the evaluation sets by role (with the held-out noise
condition at an SNR measured over speech) and, when conditions are fine-tuned, the shared
dense recogniser's own WERs. Free of imports of ``method.py``, so editing the method
leaves this code, and the keys of what it caches, unchanged."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from lib.asr import (
    DIGIT_WORDS,
    UtteranceSet,
    WordTokenizer,
    corpus_sets,
    dense_asr_artifact,
    dense_asr_key,
    digit_corpus,
    evaluate_wer,
    load_data,
    log_mel,
    model_from_artifact,
)
from lib.asr.corpus import utterance_plan
from lib.asr.snr import add_noise_at_speech_snr
from lib.core import ArtifactCache, derive_seed, select_device


def eval_split_names(config: Any) -> dict[str, str]:
    """``{role: split}``. Roles: ``dev`` (picks sigma and the baseline's dropout),
    ``train`` (digits: the training utterances themselves, for the generalisation gap),
    ``seen`` (digits: new utterances of the training voices), ``unseen`` (new speakers:
    digits ``test``, LibriSpeech test-clean) and ``unseen_noisy`` (new speakers in harder
    conditions: the digit test voices with extra noise, LibriSpeech test-other)."""
    if config.recipe.data == "digits":
        names = {"dev": "dev", "train": "train", "seen": "test_seen", "unseen": "test"}
        if config.held_out_snr_db is not None:
            names["unseen_noisy"] = "test_noisy"
        return names
    return {"dev": config.recipe.dev_splits[0], "unseen": "test-clean",
            "unseen_noisy": "test-other"}


#: The paper's relative WER improvements from noise at 90% sparsity (abstract).
PAPER_IMPROVEMENT_90 = {"test-other": 0.12, "test-clean": 0.14}


def role_labels(config: Any) -> dict[str, tuple[str, str]]:
    """``{role: (label, the paper's analogous LibriSpeech set or "-")}``."""
    if config.recipe.data == "digits":
        snr = config.held_out_snr_db
        return {"dev": ("dev (unseen voices)", "-"), "train": ("training utterances", "-"),
                "seen": ("seen voices", "-"),
                "unseen": ("unseen voices", "test-clean"),
                "unseen_noisy": (f"unseen voices + {snr:g} dB noise" if snr is not None
                                 else "-", "test-other")}
    return {"dev": (config.recipe.dev_splits[0], "-"), "unseen": ("test-clean", "test-clean"),
            "unseen_noisy": ("test-other", "test-other")}


def corpus_config(config: Any):
    """The digit corpus the conditions train and are scored on: the config's own (few
    training voices), else the shared dense recogniser's."""
    return config.corpus if config.corpus is not None else config.recipe.corpus


def held_out_noise_set(corpus_cfg, seed: int, tokenizer, snr_db: float,
                       split: str = "test") -> UtteranceSet:
    """``split`` of the digit corpus with extra white or pink noise (alternating) at
    ``snr_db`` measured over the speech (the utterance without its leading and trailing
    silence, as the corpus measures its own SNRs): unseen voices in unseen noise."""
    from lib.asr.corpus import NOISE_KINDS as COLOURS

    corpus = digit_corpus(corpus_cfg, seed)
    plan = utterance_plan(corpus_cfg, split, seed)
    rate = corpus["sample_rate"]
    data = corpus[split]
    feats = []
    for i, (audio, item) in enumerate(zip(data["audio"], plan, strict=True)):
        wave = audio.numpy() / 32768.0
        lead, trail = int(item["lead_s"] * rate), int(item["trail_s"] * rate)
        rng = np.random.default_rng(derive_seed(seed, "held-out-noise", split, i))
        noisy = add_noise_at_speech_snr(wave, slice(lead, wave.size - trail), snr_db,
                                        COLOURS[i % len(COLOURS)], rng)
        feats.append(log_mel(torch.from_numpy(np.clip(noisy, -1.0, 1.0)).float(), rate))
    return UtteranceSet(feats, data["text"], tokenizer, data.get("speaker"))


def load_sets(config: Any) -> tuple[dict[str, Any], Any]:
    """``({split: set}, tokenizer)`` for training and evaluation (built once a process for
    each data set: configs that differ only in training knobs share them)."""
    return _load_sets(config.recipe, config.dense_seed, config.corpus, config.held_out_snr_db)


@lru_cache(maxsize=2)
def _load_sets(recipe, seed: int, corpus_cfg, held_out_snr_db) -> tuple[dict[str, Any], Any]:
    if recipe.data != "digits":
        return load_data(recipe, seed)
    corpus_cfg = corpus_cfg if corpus_cfg is not None else recipe.corpus
    tokenizer = WordTokenizer(DIGIT_WORDS)  # the shared dense model's tokenizer
    sets = corpus_sets(digit_corpus(corpus_cfg, seed), tokenizer)
    if held_out_snr_db is not None:
        sets["test_noisy"] = held_out_noise_set(corpus_cfg, seed, tokenizer, held_out_snr_db)
    return sets, tokenizer


def dense_start_artifact(config: Any, *, device: str = "auto",
                         cache: ArtifactCache | None = None) -> dict[str, Any]:
    """WERs (by role) of the shared dense model fine-tuned runs start from (cached)."""
    cache = cache or ArtifactCache()
    key = {"recipe": config.recipe, "dense_seed": config.dense_seed,
           "corpus": config.corpus, "held_out_snr_db": config.held_out_snr_db,
           "eval_batch_size": config.eval_batch_size}

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

__all__ = ["PAPER_IMPROVEMENT_90", "corpus_config", "dense_start_artifact", "eval_split_names",
           "held_out_noise_set", "load_sets", "role_labels"]
