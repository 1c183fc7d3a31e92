"""The task every condition is trained on: the shared dense recogniser (``lib.asr``), the
evaluation sets by role (with the digit corpus's held-out noise condition) and the dense
model's own WERs. Free of imports of ``method.py``, so editing the method leaves this
code, and the keys of what it caches, unchanged."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from lib.asr import (
    UtteranceSet,
    add_noise,
    dense_asr_artifact,
    dense_asr_key,
    digit_corpus,
    evaluate_wer,
    load_data,
    log_mel,
    model_from_artifact,
)
from lib.core import ArtifactCache, derive_seed, select_device


def eval_split_names(config: Any) -> dict[str, str]:
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


def role_labels(config: Any) -> dict[str, tuple[str, str]]:
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
def load_sets(config: Any) -> tuple[dict[str, Any], Any]:
    """``({split: set}, tokenizer)`` for fine-tuning and evaluation (built once a process)."""
    sets, tokenizer = load_data(config.recipe, config.dense_seed)
    if config.recipe.data == "digits" and config.held_out_snr_db is not None:
        sets["test_noisy"] = held_out_noise_set(config.recipe, config.dense_seed, tokenizer,
                                                config.held_out_snr_db)
    return sets, tokenizer


def dense_start_artifact(config: Any, *, device: str = "auto",
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

