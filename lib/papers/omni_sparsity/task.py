"""The task both approaches are trained on: the shared dense recogniser (``lib.asr``) and
its data. Free of imports of ``method.py``, so editing the method leaves this code, and the
dense model's cache key, unchanged."""

from __future__ import annotations

from typing import Any

from lib.asr import DENSE_RECIPES, dense_asr_artifact, dense_recipe, load_data, model_from_artifact
from lib.core import ArtifactCache


def split_names(config: Any) -> tuple[str, tuple[str, ...]]:
    """``(dev split, test splits)``, the hardest test split first: unseen voices then the
    training voices on the digit corpus; LibriSpeech test-other then test-clean."""
    if DENSE_RECIPES[config.dense_scale].data == "librispeech":
        return "dev-other", ("test-other", "test-clean")
    return "dev", ("test", "test_seen")


def dense_and_data(config: Any, dense_seed: int, cache: ArtifactCache | None = None
                   ) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """``(dense artifact, {split: set}, tokenizer)``: the dense model of
    ``config.dense_scale`` (trained once and cached) and the data it was trained on."""
    recipe = dense_recipe(config.dense_scale, config.dense_batch_size)
    dense = dense_asr_artifact(recipe, dense_seed, cache)
    sets, tokenizer = load_data(recipe, dense_seed, tokenizer=model_from_artifact(dense)[1])
    return dense, sets, tokenizer


__all__ = ["dense_and_data", "split_names"]
