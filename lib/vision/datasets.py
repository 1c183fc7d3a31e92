"""Full-scale image data sets on disk, read by torchvision, and their standard loaders.

=========  =============================================  ===============================
data set   on-disk layout under ``root``                    fetched by
=========  =============================================  ===============================
MNIST      ``MNIST/raw/{train,t10k}-{images-idx3,labels-   ``python data_scripts/
           idx1}-ubyte`` (torchvision's layout)            fetch_vision.py mnist``
CIFAR-10   ``cifar-10-batches-py/{data_batch_1..5,         ``python data_scripts/
           test_batch,batches.meta}`` (pickles)            fetch_vision.py cifar10``
CIFAR-100  ``cifar-100-python/{train,test,meta}``          ``python data_scripts/
           (pickles, ``fine_labels``: 100 classes)         fetch_vision.py cifar100``
SVHN       ``svhn/{train,test}_32x32.mat`` (MATLAB files,  ``python data_scripts/
           ``X`` 32x32x3xN, ``y`` in 1..10, 10 = digit 0)  fetch_vision.py svhn``
ImageNet   ``imagenet/{train,val}/<wnid>/*.JPEG``          ``python data_scripts/
           (ILSVRC-2012, one folder per class)             fetch_vision.py imagenet``
=========  =============================================  ===============================

A missing data set raises ``FileNotFoundError`` naming the command that fetches it. CIFAR
and SVHN files are checked against torchvision's md5 sums unless ``verify=False`` (the tests read
tiny fixtures written in the same format). Transforms follow the official code of Yang et
al. (2020): MNIST normalised; CIFAR-10/100 random crop 32 (padding 4) and flip; SVHN
normalised, no flip (digits); ImageNet
random-resized crop 224 and flip for training, resize 256 and centre crop 224 for testing.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

DATASETS = ("mnist", "cifar10", "cifar100", "svhn", "imagenet")
MNIST_MEAN_STD = ((0.1307,), (0.3081,))
CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
CIFAR100_MEAN_STD = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
SVHN_MEAN_STD = ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def data_root(root: str | Path | None = None) -> Path:
    """``root``, else the book's data root (``lib.core.paths.data_dir``: ``$BOOK_DATA_DIR``
    or the user's data dir, never inside the artifact cache)."""
    from lib.core.paths import data_dir

    return data_dir(root)


def _missing(name: str, root: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{name} not found under {root} ({what}); fetch it with: "
        f"python data_scripts/fetch_vision.py {name} --root {root}")


def _cifar10_class(base=None):
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    base = base or CIFAR10

    class CIFAR10Files(base):
        """torchvision's CIFAR-10 (or ``base``: CIFAR-100) reader; ``verify=False`` checks
        presence, not md5."""

        def __init__(self, *args, verify: bool = True, **kwargs):
            self._verify = verify
            super().__init__(*args, **kwargs)

        def _check_integrity(self) -> bool:
            for filename, md5 in self.train_list + self.test_list:
                path = os.path.join(self.root, self.base_folder, filename)
                if not check_integrity(path, md5 if self._verify else None):
                    return False
            return True

        def _load_meta(self) -> None:
            import pickle

            path = os.path.join(self.root, self.base_folder, self.meta["filename"])
            if not check_integrity(path, self.meta["md5"] if self._verify else None):
                raise RuntimeError(f"{path} is missing or corrupted")
            with open(path, "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return CIFAR10Files


def _svhn_class():
    from torchvision.datasets import SVHN
    from torchvision.datasets.utils import check_integrity

    class SVHNFiles(SVHN):
        """torchvision's SVHN reader; ``verify=False`` checks presence, not md5."""

        def __init__(self, *args, verify: bool = True, **kwargs):
            self._verify = verify
            super().__init__(*args, **kwargs)

        def _check_integrity(self) -> bool:
            return check_integrity(os.path.join(self.root, self.filename),
                                   self.split_list[self.split][2] if self._verify else None)

    return SVHNFiles


def _transform(name: str, train: bool):
    from torchvision import transforms as T

    if name == "mnist":
        return T.Compose([T.ToTensor(), T.Normalize(*MNIST_MEAN_STD)])
    if name in ("cifar10", "cifar100"):
        aug = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if train else []
        stats = CIFAR10_MEAN_STD if name == "cifar10" else CIFAR100_MEAN_STD
        return T.Compose([*aug, T.ToTensor(), T.Normalize(*stats)])
    if name == "svhn":
        return T.Compose([T.ToTensor(), T.Normalize(*SVHN_MEAN_STD)])
    if train:
        return T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize(*IMAGENET_MEAN_STD)])
    return T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                      T.Normalize(*IMAGENET_MEAN_STD)])


def vision_dataset(name: str, train: bool, root: str | Path | None = None, *,
                   verify: bool = True, transform=None) -> Dataset:
    """The training or test split of ``name`` (``DATASETS``)."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")
    root = data_root(root)
    transform = transform if transform is not None else _transform(name, train)
    if name == "mnist":
        from torchvision.datasets import MNIST

        if not (root / "MNIST" / "raw").is_dir():
            raise _missing(name, root, "no MNIST/raw folder")
        try:
            return MNIST(str(root), train=train, transform=transform, download=False)
        except RuntimeError as err:
            raise _missing(name, root, str(err)) from None
    if name == "cifar10":
        if not (root / "cifar-10-batches-py").is_dir():
            raise _missing(name, root, "no cifar-10-batches-py folder")
        try:
            return _cifar10_class()(str(root), train=train, transform=transform,
                                    download=False, verify=verify)
        except RuntimeError as err:
            raise _missing(name, root, str(err)) from None
    if name == "cifar100":
        from torchvision.datasets import CIFAR100

        if not (root / "cifar-100-python").is_dir():
            raise _missing(name, root, "no cifar-100-python folder")
        try:
            return _cifar10_class(CIFAR100)(str(root), train=train, transform=transform,
                                            download=False, verify=verify)
        except RuntimeError as err:
            raise _missing(name, root, str(err)) from None
    if name == "svhn":
        if not (root / "svhn").is_dir():
            raise _missing(name, root, "no svhn folder")
        try:
            return _svhn_class()(str(root / "svhn"), split="train" if train else "test",
                                 transform=transform, download=False, verify=verify)
        except RuntimeError as err:
            raise _missing(name, root, str(err)) from None
    from torchvision.datasets import ImageFolder

    folder = root / "imagenet" / ("train" if train else "val")
    if not folder.is_dir():
        raise _missing(name, root, f"no {folder.relative_to(root)} folder")
    return ImageFolder(str(folder), transform=transform)


def vision_loaders(name: str, batch_size: int, root: str | Path | None = None, *,
                   workers: int = 4, seed: int = 0, verify: bool = True
                   ) -> tuple[DataLoader, DataLoader]:
    """(train loader, shuffled by ``seed``; test loader) for a full-scale data set."""
    train = vision_dataset(name, True, root, verify=verify)
    test = vision_dataset(name, False, root, verify=verify)
    g = torch.Generator().manual_seed(seed)
    return (DataLoader(train, batch_size=batch_size, shuffle=True, num_workers=workers,
                       generator=g, drop_last=True, persistent_workers=workers > 0),
            DataLoader(test, batch_size=batch_size, shuffle=False, num_workers=workers))


class StepBatches:
    """Batch ``step`` of a map-style data set, depending only on ``(seed, step)``.

    Each epoch is a permutation drawn from ``(seed, epoch)``; batches are read by a
    ``DataLoader`` (with ``workers`` processes) that is restarted at the right offset when a
    run resumes from a checkpoint, so ``train_loop`` can resume a full-scale run exactly.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, workers: int = 4):
        if batch_size < 1 or len(dataset) < batch_size:
            raise ValueError(f"need 1 <= batch_size <= len(dataset), got {batch_size}, "
                             f"{len(dataset)}")
        self.dataset, self.batch_size, self.seed, self.workers = dataset, batch_size, seed, workers
        self.per_epoch = len(dataset) // batch_size
        self._iter, self._next_step = None, None

    def _start(self, step: int) -> None:
        from torch.utils.data import Subset

        from lib.core import derive_seed, make_generator

        epoch, offset = divmod(step, self.per_epoch)
        perm = torch.randperm(len(self.dataset),
                              generator=make_generator(derive_seed(self.seed, "epoch", epoch)))
        rest = perm[offset * self.batch_size: self.per_epoch * self.batch_size]
        loader = DataLoader(Subset(self.dataset, rest.tolist()), batch_size=self.batch_size,
                            shuffle=False, num_workers=self.workers, drop_last=True)
        self._iter, self._next_step = iter(loader), step

    def __call__(self, step: int):
        if self._iter is None or step != self._next_step or step % self.per_epoch == 0:
            self._start(step)
        batch = next(self._iter)
        self._next_step = step + 1
        return batch
