"""Grayscale images bundled with scikit-image, their patches, and patch-based denoising.

Everything here works offline: the images listed in ``BUNDLED_IMAGES`` ship inside the
scikit-image wheel (``skimage/data/*.png``), so no download is ever attempted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

#: Images that ship inside the scikit-image package (loaded without network access).
BUNDLED_IMAGES = ("astronaut", "brick", "camera", "cell", "chelsea", "coffee", "coins",
                  "grass", "gravel", "horse", "hubble_deep_field", "moon", "page", "text")


def bundled_gray_image(name: str, size: int | None = None) -> np.ndarray:
    """A bundled scikit-image picture as a float64 grayscale array in [0, 1].

    With ``size`` the central square crop is resized (anti-aliased) to ``size x size``.
    """
    if name not in BUNDLED_IMAGES:
        raise ValueError(f"unknown image {name!r}; bundled images are {', '.join(BUNDLED_IMAGES)}")
    from skimage import color, data, transform, util

    img = getattr(data, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3])
    img = util.img_as_float64(img)
    if size is not None:
        if not isinstance(size, int) or size < 8:
            raise ValueError(f"size must be an int >= 8, got {size!r}")
        h, w = img.shape
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        img = transform.resize(img[top:top + s, left:left + s], (size, size), anti_aliasing=True)
    return np.clip(img, 0.0, 1.0)


def sample_patches(images: Sequence[np.ndarray], patch_size: int, per_image: int,
                   seed: int) -> np.ndarray:
    """``per_image`` random ``patch_size x patch_size`` patches from each image, flattened."""
    from sklearn.feature_extraction.image import extract_patches_2d

    if patch_size < 2 or per_image < 1:
        raise ValueError(f"need patch_size >= 2 and per_image >= 1, got {patch_size}, {per_image}")
    rng = np.random.default_rng(seed)
    out = [extract_patches_2d(img, (patch_size, patch_size), max_patches=per_image,
                              random_state=int(rng.integers(2**31 - 1)))
           for img in images]
    return np.concatenate(out).reshape(-1, patch_size * patch_size)


def remove_dc(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Patches minus their own mean (the DC component), and those means."""
    dc = patches.mean(axis=1, keepdims=True)
    return patches - dc, dc


def psnr(clean: np.ndarray, estimate: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(range^2 / MSE)``."""
    mse = float(np.mean((np.asarray(clean) - np.asarray(estimate)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def all_patches(img: np.ndarray, patch_size: int) -> np.ndarray:
    """Every overlapping ``p x p`` patch of a 2-d image, row-major, flattened (a copy)."""
    from numpy.lib.stride_tricks import sliding_window_view

    if img.ndim != 2 or min(img.shape) < patch_size:
        raise ValueError(f"need a 2-d image at least {patch_size} on a side, got {img.shape}")
    windows = sliding_window_view(img, (patch_size, patch_size))
    return windows.reshape(-1, patch_size * patch_size).copy()


def average_overlapping_patches(patches: np.ndarray, image_shape: tuple[int, int],
                                patch_size: int) -> np.ndarray:
    """Put every patch back at its place and average the overlaps (the inverse of
    ``all_patches`` for consistent patches; as scikit-learn's ``reconstruct_from_patches_2d``
    but vectorised over the ``p^2`` offsets instead of looping over patches)."""
    h, w = image_shape
    ph, pw = h - patch_size + 1, w - patch_size + 1
    if patches.shape != (ph * pw, patch_size * patch_size):
        raise ValueError(f"expected {(ph * pw, patch_size * patch_size)} patches for an image "
                         f"of shape {image_shape}, got {patches.shape}")
    grid = patches.reshape(ph, pw, patch_size, patch_size)
    total = np.zeros((h, w))
    count = np.zeros((h, w))
    for di in range(patch_size):
        for dj in range(patch_size):
            total[di:di + ph, dj:dj + pw] += grid[:, :, di, dj]
            count[di:di + ph, dj:dj + pw] += 1.0
    return total / count


def denoise_by_patches(noisy: np.ndarray, patch_size: int,
                       denoise_centered: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Denoise every overlapping patch and average the overlaps.

    ``denoise_centered`` maps DC-free patches (rows) to their denoised versions; the DC
    (patch mean) is kept as measured, as in scikit-learn's dictionary-denoising example.
    """
    flat = all_patches(noisy, patch_size)
    centered, dc = remove_dc(flat)
    restored = denoise_centered(centered) + dc
    return average_overlapping_patches(restored, noisy.shape, patch_size)


def tile_atoms(atoms: np.ndarray, patch_size: int, columns: int = 16) -> np.ndarray:
    """A mosaic of dictionary atoms (columns of ``atoms``), each scaled to [0, 1], with a
    one-pixel gap, for ``imshow``."""
    n, m = atoms.shape
    if n != patch_size * patch_size:
        raise ValueError(f"atoms have {n} entries; patch_size {patch_size} needs {patch_size**2}")
    rows = math.ceil(m / columns)
    step = patch_size + 1
    mosaic = np.ones((rows * step - 1, columns * step - 1))
    for j in range(m):
        a = atoms[:, j].reshape(patch_size, patch_size)
        span = a.max() - a.min()
        a = (a - a.min()) / span if span > 0 else np.full_like(a, 0.5)
        r, c = divmod(j, columns)
        mosaic[r * step:r * step + patch_size, c * step:c * step + patch_size] = a
    return mosaic
