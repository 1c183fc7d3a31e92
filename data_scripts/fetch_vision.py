"""Fetch and verify the full-scale image data sets (and AlexNet's pretrained weights).

    python data_scripts/fetch_vision.py mnist     [--root DIR]
    python data_scripts/fetch_vision.py cifar10   [--root DIR]
    python data_scripts/fetch_vision.py imagenet  [--root DIR]   # checks a manual download
    python data_scripts/fetch_vision.py alexnet-pretrained [--root DIR]

DIR defaults to $BOOK_DATA_DIR or ~/.cache/effml-book/data (lib.vision.data_root). MNIST
and CIFAR-10 are downloaded by torchvision, which checks each archive's md5; CIFAR-10's
extracted files are then checked against torchvision's md5 sums again when read. ImageNet
(ILSVRC-2012) needs an account at image-net.org: put the class folders under
DIR/imagenet/train and DIR/imagenet/val (one folder per wnid, as torchvision's ImageFolder
reads them); this script verifies the layout (1000 classes, 1,281,167 and 50,000 images).
AlexNet's weights come from torchvision's URL with its sha256 prefix checked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.vision.datasets import data_root  # noqa: E402

IMAGENET_COUNTS = {"train": (1000, 1_281_167), "val": (1000, 50_000)}


def fetch_mnist(root: Path) -> None:
    from torchvision.datasets import MNIST

    for train in (True, False):
        ds = MNIST(str(root), train=train, download=True)
        print(f"MNIST {'train' if train else 'test'}: {len(ds)} images")


def fetch_cifar10(root: Path) -> None:
    from torchvision.datasets import CIFAR10

    for train in (True, False):
        ds = CIFAR10(str(root), train=train, download=True)  # md5 of archive and files
        print(f"CIFAR-10 {'train' if train else 'test'}: {len(ds)} images (md5 verified)")


def check_imagenet(root: Path) -> None:
    for split, (classes, images) in IMAGENET_COUNTS.items():
        folder = root / "imagenet" / split
        if not folder.is_dir():
            raise SystemExit(f"missing {folder}: download ILSVRC-2012 from image-net.org and "
                             f"place one folder per class there")
        dirs = [d for d in folder.iterdir() if d.is_dir()]
        count = sum(1 for d in dirs for f in d.iterdir() if f.is_file())
        status = "ok" if (len(dirs), count) == (classes, images) else "UNEXPECTED"
        print(f"ImageNet {split}: {len(dirs)} classes, {count} images ({status}; "
              f"expected {classes}, {images})")
        if status != "ok":
            raise SystemExit(1)


def fetch_alexnet(root: Path) -> None:
    import torch
    from torchvision.models import AlexNet_Weights

    url = AlexNet_Weights.IMAGENET1K_V1.url
    state = torch.hub.load_state_dict_from_url(url, check_hash=True, progress=True)
    out = root / "pretrained" / "alexnet-imagenet.pth"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    print(f"AlexNet weights (sha256 prefix checked) -> {out}")


def main() -> None:
    targets = {"mnist": fetch_mnist, "cifar10": fetch_cifar10, "imagenet": check_imagenet,
               "alexnet-pretrained": fetch_alexnet}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(targets))
    parser.add_argument("--root", default=None,
                        help="data folder (default: lib.vision.data_root())")
    args = parser.parse_args()
    root = data_root(args.root)
    root.mkdir(parents=True, exist_ok=True)
    targets[args.dataset](root)


if __name__ == "__main__":
    main()
