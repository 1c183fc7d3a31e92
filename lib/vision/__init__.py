"""Vision: embedded and full-scale image data, and the image classifiers of the chapters."""

from .classify import (
    ClassifierTraining,
    accuracy,
    correct,
    predictions,
    train_classifier,
    trained_classifier,
    trained_classifier_key,
)
from .datasets import DATASETS, StepBatches, data_root, vision_dataset, vision_loaders
from .embedded import digits_images
from .models import MODELS, build_model, lenet5, lenet5_like, resnet20, resnet50_cifar, small_cnn
from .synthetic import SyntheticDigitsConfig, cached_synthetic_digits, synthetic_digits

__all__ = ["DATASETS", "MODELS", "ClassifierTraining", "StepBatches", "SyntheticDigitsConfig",
           "accuracy", "build_model", "cached_synthetic_digits", "correct", "data_root",
           "digits_images", "lenet5", "lenet5_like", "predictions", "resnet20",
           "resnet50_cifar", "small_cnn", "synthetic_digits", "train_classifier",
           "trained_classifier", "trained_classifier_key", "vision_dataset", "vision_loaders"]
