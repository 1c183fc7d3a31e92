"""Data of the DLTF chapter: DC-free image patches of the bundled scikit-image pictures and
scikit-learn's digits (both ship with the libraries: no download, at any scale), and the
single-thread context the dictionary loops run in. Free of imports of ``method.py``."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np
import torch

from lib.core import derive_seed
from lib.vision import patches as vpatches


@contextlib.contextmanager
def single_threaded():
    """Run torch and BLAS/OpenMP pools on one thread, then restore them.

    The loops here are thousands of small tensor ops; on a small, shared CPU the thread
    pools' hand-offs cost more than they save (measured 10x slower with 2 threads on a
    loaded 2-core machine), and one thread also makes the reductions reproducible.
    """
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)



TRAIN_IMAGES = ("astronaut", "chelsea", "coffee", "brick", "grass", "gravel", "moon", "text",
                "page", "hubble_deep_field")     # camera (test) and coins (validation) held out
VALIDATION_IMAGE = "coins"
TEST_IMAGE = "camera"


# --------------------------------------------------------------------------------------
# 9. Data
# --------------------------------------------------------------------------------------

def patch_training_data(cfg, seed: int) -> dict[str, Any]:
    """DC-free 8x8 patches of the bundled training images, scaled to mean |x|^2 = 1
    (``cfg``: the chapter's config; its train_images, patch_size, patches_per_image)."""
    X, scale = _patch_training_data(tuple(cfg.train_images), cfg.patch_size,
                                    cfg.patches_per_image, seed)
    return {"X": X.clone(), "scale": scale}


@functools.lru_cache(maxsize=4)
def _patch_training_data(names: tuple[str, ...], patch_size: int, per_image: int,
                         seed: int) -> tuple[torch.Tensor, float]:
    unknown = set(names) & {TEST_IMAGE, VALIDATION_IMAGE}
    if unknown:
        raise ValueError(f"{sorted(unknown)} are the held-out denoising images; train on others")
    images = [vpatches.bundled_gray_image(name) for name in names]
    raw = vpatches.sample_patches(images, patch_size, per_image, derive_seed(seed, "patches"))
    centered, _ = vpatches.remove_dc(raw)
    scale = float(np.sqrt((centered**2).sum(1).mean()))
    return torch.tensor(centered / scale), scale


def digits_data(seed: int) -> dict[str, Any]:
    """scikit-learn's digits, split 75/25 (stratified), centered on the training mean and
    scaled to mean |x|^2 = 1 on the training split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x / 16.0, y, test_size=0.25, stratify=y,
                                          random_state=derive_seed(seed, "digits") % 2**31)
    mean = xtr.mean(0)
    scale = float(np.sqrt(((xtr - mean) ** 2).sum(1).mean()))
    return {"x_train": torch.tensor((xtr - mean) / scale), "y_train": ytr,
            "x_test": torch.tensor((xte - mean) / scale), "y_test": yte}

