"""Synthetic digits: an embedded image task as large as a chapter needs (no download).

scikit-learn's 1,797 digits are too few for a test set that can resolve a one-point
accuracy difference (450 test images: a standard error of about 0.7 points at 97 %). Here
the ten digits are rendered from the fonts that ship with matplotlib (DejaVu Sans, Serif
and Mono in their weights and slants, STIX, Computer Modern: 21 faces), each with a random
affine distortion (rotation, scale, shear, translation), stroke width, faint clutter
strokes, a random occluding box, contrast and pixel noise, at ``size x size`` (28 by
default, MNIST's size), seeded. Any number of images can be drawn. The distortions are
set so that a network of LeNet-5's size does not saturate (``tests/test_vision_synthetic``
and the chapters report its accuracy), leaving compression and attacks room to show what
they cost.

Fonts can be held out (``test_fonts``): the test set then uses faces never seen in
training, a distribution shift a reader can switch on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

#: matplotlib's bundled faces that draw the ten digits as lining figures.
FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf", "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmti10.ttf",
)


@dataclass(frozen=True)
class SyntheticDigitsConfig:
    """How many images, of what size, distorted how much."""

    n_train: int = 20000
    n_dev: int = 2000
    n_test: int = 5000
    size: int = 28
    max_rotation_deg: float = 20.0
    scale_range: tuple[float, float] = (0.65, 1.05)
    max_shear: float = 0.3
    max_shift: float = 0.14          # fraction of the image side
    noise_std: float = 0.12          # pixel noise on [0, 1] images
    clutter_strokes: int = 2         # up to this many random line segments behind the digit
    occlusion_prob: float = 0.15     # chance of a random dark box over part of the digit
    test_fonts: tuple[str, ...] = ()  # faces used only by dev and test (a shift), else none

    def __post_init__(self):
        for name in ("n_train", "n_dev", "n_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.size < 8:
            raise ValueError(f"size must be >= 8, got {self.size}")
        unknown = sorted(set(self.test_fonts) - set(available_fonts()))
        if unknown:
            raise ValueError(f"unknown font(s) {unknown}; valid: {', '.join(available_fonts())}")


@lru_cache(maxsize=1)
def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@lru_cache(maxsize=1)
def available_fonts() -> tuple[str, ...]:
    """The faces of ``FONT_FILES`` present in this matplotlib installation."""
    return tuple(f for f in FONT_FILES if (_font_dir() / f).exists())


@lru_cache(maxsize=256)
def _glyph(font: str, digit: int, stroke: int, canvas: int) -> np.ndarray:
    """The digit drawn centred on a ``canvas x canvas`` float image in [0, 1]."""
    from PIL import Image, ImageDraw, ImageFont

    face = ImageFont.truetype(str(_font_dir() / font), size=int(canvas * 0.7))
    img = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(img)
    text = str(digit)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=face, stroke_width=stroke)
    x = (canvas - (right - left)) / 2 - left
    y = (canvas - (bottom - top)) / 2 - top
    draw.text((x, y), text, fill=255, font=face, stroke_width=stroke, stroke_fill=255)
    return np.asarray(img, dtype=np.float32) / 255.0


def _clutter(cfg: SyntheticDigitsConfig, rng: np.random.Generator) -> np.ndarray:
    """Up to ``clutter_strokes`` faint random line segments (a distractor, not a digit)."""
    from skimage.draw import line_aa

    img = np.zeros((cfg.size, cfg.size), dtype=np.float32)
    for _ in range(int(rng.integers(0, cfg.clutter_strokes + 1))):
        r0, c0, r1, c1 = rng.integers(0, cfg.size, 4)
        rr, cc, val = line_aa(int(r0), int(c0), int(r1), int(c1))
        img[rr, cc] = np.maximum(img[rr, cc], val * rng.uniform(0.3, 0.7))
    return img


def render_digits(labels: np.ndarray, fonts: list[str], cfg: SyntheticDigitsConfig,
                  rng: np.random.Generator) -> np.ndarray:
    """``(N, size, size)`` float images in [0, 1] of ``labels`` in random faces of ``fonts``."""
    from skimage.transform import AffineTransform, resize, warp

    canvas = 4 * cfg.size
    out = np.empty((len(labels), cfg.size, cfg.size), dtype=np.float32)
    for i, digit in enumerate(labels):
        font = fonts[rng.integers(len(fonts))]
        glyph = _glyph(font, int(digit), int(rng.integers(0, 3)), canvas)
        scale = rng.uniform(*cfg.scale_range)
        rot = np.deg2rad(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg))
        shear = rng.uniform(-cfg.max_shear, cfg.max_shear)
        shift = rng.uniform(-cfg.max_shift, cfg.max_shift, 2) * canvas
        centre = AffineTransform(translation=(-canvas / 2, -canvas / 2))
        move = AffineTransform(scale=(scale, scale), rotation=rot, shear=shear,
                               translation=(canvas / 2 + shift[0], canvas / 2 + shift[1]))
        warped = warp(glyph, (centre + move).inverse, output_shape=glyph.shape, order=1)
        small = resize(warped, (cfg.size, cfg.size), anti_aliasing=True)
        small = np.maximum(small, _clutter(cfg, rng))
        if rng.random() < cfg.occlusion_prob:
            h, w = rng.integers(cfg.size // 6, cfg.size // 3, 2)
            top, left = rng.integers(0, cfg.size - h), rng.integers(0, cfg.size - w)
            small[top:top + h, left:left + w] = 0.0
        contrast = rng.uniform(0.6, 1.0)
        noisy = contrast * small + rng.normal(0.0, cfg.noise_std, small.shape)
        out[i] = np.clip(noisy, 0.0, 1.0)
    return out


def synthetic_digits(cfg: SyntheticDigitsConfig = SyntheticDigitsConfig(),
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """``x_{train,dev,test}`` as ``(N, 1, size, size)`` float images standardised with the
    training mean and std, and ``y_*`` labels (balanced: each digit equally often up to
    rounding), drawn from ``seed``. Deterministic: the same seed gives the same images."""
    fonts = list(available_fonts())
    train_fonts = [f for f in fonts if f not in cfg.test_fonts] or fonts
    eval_fonts = list(cfg.test_fonts) or fonts
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5D16]))
    out: dict[str, torch.Tensor] = {}
    for split, n, faces in (("train", cfg.n_train, train_fonts), ("dev", cfg.n_dev, eval_fonts),
                            ("test", cfg.n_test, eval_fonts)):
        labels = rng.permutation(np.arange(n) % 10)
        out[f"x_{split}"] = torch.from_numpy(render_digits(labels, faces, cfg, rng)).unsqueeze(1)
        out[f"y_{split}"] = torch.from_numpy(labels.astype(np.int64))
    mean, std = out["x_train"].mean(), out["x_train"].std()
    for split in ("train", "dev", "test"):
        out[f"x_{split}"] = (out[f"x_{split}"] - mean) / std
    return out


def cached_synthetic_digits(cfg: SyntheticDigitsConfig = SyntheticDigitsConfig(),
                            seed: int = 0, cache=None) -> dict[str, torch.Tensor]:
    """``synthetic_digits`` through the artifact cache (rendering 27k images takes a while)."""
    from lib.core import ArtifactCache

    return (cache or ArtifactCache()).get_or_create(
        "synthetic-digits", {"config": cfg, "seed": seed}, lambda: synthetic_digits(cfg, seed))
