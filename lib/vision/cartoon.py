"""Embedded photo -> "cartoon" pairs for image-to-image translation, and CycleGAN folders.

The target of each photo is a deterministic filter of it (the usual hand-made cartoon
effect): edge-preserving smoothing (a bilateral filter, twice), a uniform colour
quantization to ``levels`` values per channel, and dark lines where the Canny detector
finds edges. The photos are scikit-image's bundled colour images (no download) and
procedural scenes (seeded shapes over gradients and texture); every image is resized so
its shorter side is ``side`` pixels, then cut into seeded crops. Train, dev and test crops
come from disjoint images, so the dev and test crops are held out.

At full scale the data are CycleGAN's unpaired folders (``trainA``, ``trainB``, ``testA``,
``testB`` of jpgs, e.g. horse2zebra) read from ``lib.core.paths.data_dir()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

#: scikit-image's bundled colour photos, split by image (never a crop of one in another).
PHOTO_SPLITS = {"train": ("astronaut", "coffee", "rocket"),
                "dev": ("immunohistochemistry",),
                "test": ("chelsea",)}
#: procedural scenes (by seed) of each split.
SCENE_SPLITS = {"train": tuple(range(9)), "dev": (9, 10), "test": (11, 12, 13)}


def procedural_scene(seed: int, size: int = 128) -> np.ndarray:
    """A seeded RGB scene in [0, 1]: a two-colour gradient, a noise texture, and a few
    discs, rectangles and stripes of random colours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    t = (np.cos(rng.uniform(0, np.pi)) * xx + np.sin(rng.uniform(0, np.pi)) * yy)[..., None]
    img = c0 * (1 - t / max(t.max(), 1e-6)) + c1 * (t / max(t.max(), 1e-6))
    img = img + 0.05 * rng.standard_normal((size, size, 1))
    for _ in range(rng.integers(4, 9)):
        colour = rng.uniform(0, 1, 3)
        kind = rng.integers(0, 3)
        cy, cx = rng.uniform(0, 1, 2)
        r = rng.uniform(0.08, 0.3)
        if kind == 0:
            m = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
        elif kind == 1:
            m = (abs(yy - cy) < r) & (abs(xx - cx) < rng.uniform(0.05, 0.3))
        else:
            m = np.sin((xx * np.cos(r * 9) + yy * np.sin(r * 9)) * rng.uniform(15, 40)) > 0.6
            m &= (yy - cy) ** 2 + (xx - cx) ** 2 < (1.5 * r) ** 2
        img[m] = colour
    return np.clip(img, 0, 1)


def cartoonize(img: np.ndarray, levels: int = 5, sigma_color: float = 0.08,
               sigma_spatial: float = 1.5, edge_sigma: float = 1.5,
               saturation: float = 1.0, tone_gamma: float = 1.0) -> np.ndarray:
    """The deterministic cartoon filter of an RGB image in [0, 1] (see the module doc).

    ``saturation`` (scale of the HSV saturation) and ``tone_gamma`` (``v <- v ** gamma``)
    restyle the colours before the quantization: the cartoon's vivid, flat palette. With
    them the target is far from its input everywhere, not only at edges and steps, so a
    generator that stays near the identity cannot match it."""
    from skimage.color import hsv2rgb, rgb2gray, rgb2hsv
    from skimage.feature import canny
    from skimage.restoration import denoise_bilateral

    smooth = img
    for _ in range(2):
        smooth = denoise_bilateral(smooth, sigma_color=sigma_color,
                                   sigma_spatial=sigma_spatial, channel_axis=-1)
    if saturation != 1.0 or tone_gamma != 1.0:
        hsv = rgb2hsv(np.clip(smooth, 0.0, 1.0))
        hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0.0, 1.0)
        hsv[..., 2] = hsv[..., 2] ** tone_gamma
        smooth = hsv2rgb(hsv)
    quant = (np.floor(smooth * levels).clip(0, levels - 1) + 0.5) / levels
    edges = canny(rgb2gray(img), sigma=edge_sigma)
    quant[edges] = 0.05
    return quant


def _resize_short(img: np.ndarray, side: int) -> np.ndarray:
    from skimage.transform import resize

    h, w = img.shape[:2]
    s = side / min(h, w)
    return resize(img, (max(side, round(h * s)), max(side, round(w * s))), anti_aliasing=True)


def split_images(split: str, side: int) -> list[np.ndarray]:
    """The photos and scenes of ``split``, float RGB in [0, 1], shorter side ``side``."""
    import skimage.data

    out = []
    for name in PHOTO_SPLITS[split]:
        im = getattr(skimage.data, name)()[..., :3].astype(np.float64) / 255.0
        out.append(_resize_short(im, side))
    out += [_resize_short(procedural_scene(s), side) for s in SCENE_SPLITS[split]]
    return out


@dataclass(frozen=True)
class CartoonCrops:
    """Paired crops in [-1, 1], NCHW: ``photo`` (the input) and ``cartoon`` (the target)."""

    photo: torch.Tensor
    cartoon: torch.Tensor


def cartoon_crops(split: str, n: int, crop: int, side: int, seed: int,
                  levels: int = 5, saturation: float = 1.0, tone_gamma: float = 1.0
                  ) -> CartoonCrops:
    """``n`` seeded ``crop x crop`` crops of ``split``'s images (round-robin over images,
    uniform positions) with their cartoon targets (the filter runs on the whole image)."""
    if split not in PHOTO_SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {sorted(PHOTO_SPLITS)}")
    images = split_images(split, side)
    targets = [cartoonize(im, levels, saturation=saturation, tone_gamma=tone_gamma)
               for im in images]
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(n):
        k = i % len(images)
        h, w = images[k].shape[:2]
        top, left = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        xs.append(images[k][top:top + crop, left:left + crop])
        ys.append(targets[k][top:top + crop, left:left + crop])

    def tensor(a: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() * 2 - 1

    return CartoonCrops(tensor(xs), tensor(ys))


# --------------------------------------------------------------------------- full scale
CYCLEGAN_SPLITS = ("trainA", "trainB", "testA", "testB")


def cyclegan_folder(root: str | Path, dataset: str) -> Path:
    """``root/dataset`` after checking it holds CycleGAN's four folders of jpgs."""
    path = Path(root) / dataset
    missing = [s for s in CYCLEGAN_SPLITS if not any((path / s).glob("*.jpg"))]
    if missing:
        raise FileNotFoundError(
            f"{path} lacks CycleGAN's {', '.join(missing)} folders of jpgs; fetch them with "
            f"`python data_scripts/cyclegan.py {dataset} --sha256 HEX --root {Path(root)}`")
    return path


def load_folder_crops(folder: Path, n: int, load: int, crop: int, seed: int,
                      flip: bool = True) -> torch.Tensor:
    """``n`` images of a folder of jpgs (sorted, cycled), resized to ``load x load`` and
    cropped at a seeded position to ``crop x crop`` (CycleGAN's resize-and-crop), in
    [-1, 1], NCHW."""
    from PIL import Image

    files = sorted(folder.glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no jpgs in {folder}")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = Image.open(files[i % len(files)]).convert("RGB").resize((load, load),
                                                                      Image.BICUBIC)
        a = np.asarray(im, dtype=np.float32) / 255.0
        top, left = rng.integers(0, load - crop + 1, size=2)
        a = a[top:top + crop, left:left + crop]
        if flip and rng.random() < 0.5:
            a = a[:, ::-1]
        out.append(np.ascontiguousarray(a))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2) * 2 - 1
