"""Full-scale image loaders read tiny fixtures written in the data sets' on-disk formats;
the embedded digits and the models have the expected shapes."""

import pytest
import torch

from lib.vision import build_model, digits_images, small_cnn, vision_dataset, vision_loaders
from lib.vision.datasets import MNIST_MEAN_STD
from tests.fixtures.formats import write_cifar10, write_imagenet, write_mnist


def test_mnist_loader_reads_idx_files(tmp_path):
    images = write_mnist(tmp_path, 12, 5)
    train = vision_dataset("mnist", True, tmp_path)
    test = vision_dataset("mnist", False, tmp_path)
    assert len(train) == 12 and len(test) == 5
    x, y = train[3]
    assert x.shape == (1, 28, 28) and y == 3
    (mean,), (std,) = MNIST_MEAN_STD          # the pixels are the bytes written, normalised
    expected = (torch.tensor(images["t10k"][4], dtype=torch.float32) / 255 - mean) / std
    assert torch.allclose(test[4][0][0], expected, atol=1e-6) and test[4][1] == 4
    model = build_model("lenet5")
    assert model(torch.stack([train[i][0] for i in range(4)])).shape == (4, 10)


def test_cifar10_loader_reads_pickled_batches(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="fetch_vision.py cifar10"):
        vision_dataset("cifar10", True, tmp_path)  # md5 sums do not match the fixture
    train = vision_dataset("cifar10", True, tmp_path, verify=False)
    assert len(train) == 20 and train.classes[0] == "airplane"
    train_loader, test_loader = vision_loaders("cifar10", 4, tmp_path, workers=0, verify=False)
    x, y = next(iter(train_loader))
    assert x.shape == (4, 3, 32, 32) and y.shape == (4,)
    assert build_model("resnet20")(x).shape == (4, 10)
    assert len(test_loader.dataset) == 4


def test_imagenet_loader_reads_class_folders_of_jpegs(tmp_path):
    write_imagenet(tmp_path)
    val = vision_dataset("imagenet", False, tmp_path)
    x, y = val[3]
    assert x.shape == (3, 224, 224) and y == 1 and val.classes == ["n01440764", "n01443537"]


def test_missing_data_names_the_fetch_command(tmp_path):
    for name in ("mnist", "cifar10", "cifar100", "svhn", "imagenet"):
        with pytest.raises(FileNotFoundError, match=f"fetch_vision.py {name}"):
            vision_dataset(name, True, tmp_path)
    with pytest.raises(ValueError, match="valid"):
        vision_dataset("stl10", True, tmp_path)
    with pytest.raises(ValueError, match="valid models"):
        build_model("vgg")


def test_embedded_digits_and_small_cnn_shapes():
    data = digits_images(seed=0, size=16)
    assert data["x_train"].shape[1:] == (1, 16, 16)
    assert len(data["y_train"]) + len(data["y_test"]) == 1797
    assert abs(float(data["x_train"].mean())) < 1e-5
    assert small_cnn()(data["x_test"][:3]).shape == (3, 10)


def test_step_batches_depend_only_on_seed_and_step():
    from torch.utils.data import TensorDataset

    from lib.vision import StepBatches

    ds = TensorDataset(torch.arange(23).float(), torch.arange(23))
    a = StepBatches(ds, 5, seed=3, workers=0)
    seq = [a(s)[1].tolist() for s in range(10)]  # 4 batches an epoch, 2.5 epochs
    assert sorted(sum(seq[:4], [])) == sorted(set(sum(seq[:4], []))), "no repeats in an epoch"
    assert seq[:4] != seq[4:8], "each epoch is a new permutation"
    resumed = StepBatches(ds, 5, seed=3, workers=0)
    assert [resumed(s)[1].tolist() for s in (6, 7, 8)] == seq[6:9]  # a resume mid-epoch
    assert StepBatches(ds, 5, seed=4, workers=0)(0)[1].tolist() != seq[0]
