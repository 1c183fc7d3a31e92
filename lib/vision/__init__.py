"""Vision: embedded and full-scale image data, and the image classifiers of the chapters."""

from .datasets import DATASETS, StepBatches, data_root, vision_dataset, vision_loaders
from .embedded import digits_images
from .models import MODELS, build_model, lenet5, resnet20, resnet50_cifar, small_cnn

__all__ = ["DATASETS", "MODELS", "StepBatches", "build_model", "data_root", "digits_images",
           "lenet5", "resnet20", "resnet50_cifar", "small_cnn", "vision_dataset",
           "vision_loaders"]
