"""The synthetic digits: deterministic, balanced, really drawn from the fonts; the shared
LeNet-5-like network and the classifier trainer."""

import numpy as np
import pytest
import torch

from lib.sparse import prunable_layers
from lib.vision.classify import ClassifierTraining, accuracy, correct, train_classifier
from lib.vision.models import lenet5_like
from lib.vision.synthetic import SyntheticDigitsConfig, available_fonts, synthetic_digits

SMALL = SyntheticDigitsConfig(n_train=300, n_dev=50, n_test=100)


def test_same_seed_same_images_other_seed_other_images():
    a, b, c = synthetic_digits(SMALL, 0), synthetic_digits(SMALL, 0), synthetic_digits(SMALL, 1)
    assert torch.equal(a["x_train"], b["x_train"]) and torch.equal(a["y_test"], b["y_test"])
    assert not torch.equal(a["x_train"], c["x_train"])
    assert a["x_train"].shape == (300, 1, 28, 28) and a["x_test"].shape == (100, 1, 28, 28)
    assert torch.bincount(a["y_train"]).tolist() == [30] * 10, "balanced classes"
    assert abs(float(a["x_train"].mean())) < 1e-5 and abs(float(a["x_train"].std()) - 1) < 1e-4


def test_every_face_draws_ten_distinct_digits():
    from lib.vision.synthetic import _glyph

    assert len(available_fonts()) >= 20
    for font in available_fonts():
        glyphs = [_glyph(font, d, 0, 112) for d in range(10)]
        assert min(float(g.sum()) for g in glyphs) > 100, f"{font} draws an empty digit"
        assert len({g.tobytes() for g in glyphs}) == 10, f"{font} draws two digits alike"


def test_labels_are_what_is_drawn():
    """Noise-free, undistorted renders of a digit are nearest to their own clean glyph."""
    from lib.vision.synthetic import render_digits

    clean = SyntheticDigitsConfig(max_rotation_deg=0, scale_range=(1, 1), max_shear=0,
                                  max_shift=0, noise_std=0, clutter_strokes=0, occlusion_prob=0)
    rng = np.random.default_rng(0)
    font = ["DejaVuSans.ttf"]
    protos = render_digits(np.arange(10), font, clean, rng)
    samples = render_digits(np.array([3, 7, 0, 9]), font, clean, rng)
    dist = ((samples[:, None] - protos[None] / protos.max() * samples.max()) ** 2).sum((2, 3))
    assert dist.argmin(1).tolist() == [3, 7, 0, 9]


def test_held_out_fonts_are_never_in_training():
    cfg = SyntheticDigitsConfig(n_train=10, n_dev=0, n_test=10, test_fonts=("cmr10.ttf",))
    assert synthetic_digits(cfg, 0)["x_test"].shape[0] == 10
    with pytest.raises(ValueError, match="unknown font"):
        SyntheticDigitsConfig(test_fonts=("Comic.ttf",))
    with pytest.raises(ValueError, match="n_train"):
        SyntheticDigitsConfig(n_train=-1)


def test_lenet5_like_layers_and_weight_counts():
    model = lenet5_like()
    sizes = [m.weight.numel() for _, m in prunable_layers(model)]
    assert sizes == [16 * 25, 48 * 16 * 25, 768 * 128, 128 * 96, 96 * 10]
    assert 100_000 <= sum(sizes) <= 400_000
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert lenet5_like(image_size=32)(torch.zeros(1, 1, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="image_size"):
        lenet5_like(image_size=30)


def test_trainer_learns_and_correct_is_per_item():
    data = synthetic_digits(SyntheticDigitsConfig(n_train=600, n_dev=100, n_test=200), 0)
    torch.manual_seed(0)
    model = lenet5_like()
    before = accuracy(model, data["x_test"], data["y_test"])
    result = train_classifier(model, data, ClassifierTraining(steps=150, eval_every=50), 0,
                              show_progress=False)
    after = correct(model, data["x_test"], data["y_test"])
    assert after.shape == (200,) and set(after.unique().tolist()) <= {0.0, 1.0}
    assert float(after.mean()) > before + 0.3, "150 SGD steps must learn the digits"
    assert [e["step"] for e in result.evals] == [50, 100, 150]


def test_trained_classifier_is_cached_and_keyed(tmp_path):
    from lib.core import ArtifactCache
    from lib.vision.classify import trained_classifier, trained_classifier_key

    cache = ArtifactCache(tmp_path)
    data_cfg = SyntheticDigitsConfig(n_train=200, n_dev=20, n_test=50)
    recipe = ClassifierTraining(steps=20)
    a = trained_classifier("lenet5_like", {}, data_cfg, recipe, 0, cache)
    b = trained_classifier("lenet5_like", {}, data_cfg, recipe, 0, cache)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    key = trained_classifier_key("lenet5_like", {}, data_cfg, recipe, 0, cache)
    assert cache.path("dense-classifier", key).exists()
    assert key != trained_classifier_key("lenet5_like", {}, data_cfg, recipe, 1, cache)
    assert 0.0 <= a["test_accuracy"] <= 1.0
