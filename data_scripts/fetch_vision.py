"""Fetch and verify the full-scale image data sets (and AlexNet's pretrained weights).

    python data_scripts/fetch_vision.py mnist     [--root DIR]
    python data_scripts/fetch_vision.py cifar10   [--root DIR]
    python data_scripts/fetch_vision.py cifar100  [--root DIR]
    python data_scripts/fetch_vision.py svhn      [--root DIR]
    python data_scripts/fetch_vision.py imagenet  [--root DIR]   # verifies a manual download
    python data_scripts/fetch_vision.py alexnet-pretrained [--root DIR]
    python data_scripts/fetch_vision.py squeezenet-pretrained [--root DIR]

``DIR`` defaults to the book's data root (``$BOOK_DATA_DIR``, else the user's data dir:
``lib.core.paths.data_dir``), the folder every chapter reads at full scale. Downloads go
through ``lib.core.download.fetch_file``: an interrupted one resumes when the command is run
again, and each archive is checked against the MD5 that torchvision publishes for it
(``torchvision.datasets.MNIST.resources``, ``CIFAR10.tgz_md5``, ``CIFAR100.tgz_md5``,
``SVHN.split_list``) before it is unpacked; a
mismatch leaves the file aside as ``.corrupt`` and fails.

ImageNet (ILSVRC-2012) needs an account at image-net.org: put ``ILSVRC2012_img_train.tar``,
``ILSVRC2012_img_val.tar`` and ``ILSVRC2012_devkit_t12.tar.gz`` in ``DIR/imagenet/``; this
script checks them against their published MD5s (``torchvision.datasets.imagenet
.ARCHIVE_META``) and unpacks them with torchvision's own parsers into the class folders
``DIR/imagenet/{train,val}/<wnid>/`` the loaders read. AlexNet's weights come from
torchvision's URL with its sha256 prefix checked.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.core.download import ChecksumError, fetch_file, verify_file  # noqa: E402
from lib.core.paths import data_dir  # noqa: E402


def fetch_mnist(root: Path, mirror: str | None = None) -> None:
    """The four IDX files, gunzipped into ``root/MNIST/raw`` (torchvision's layout)."""
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    mirrors = [mirror] if mirror else list(MNIST.mirrors)
    for filename, md5 in MNIST.resources:
        archive = raw / filename
        for i, base in enumerate(mirrors):
            try:
                fetch_file(f"{base.rstrip('/')}/{filename}", archive, md5=md5)
                break
            except OSError as err:  # a dead mirror: try the next one
                if i == len(mirrors) - 1:
                    raise
                print(f"{base}: {err}; trying the next mirror", file=sys.stderr)
        out = raw / filename.removesuffix(".gz")
        with gzip.open(archive, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    for train in (True, False):
        ds = MNIST(str(root), train=train, download=False)
        print(f"MNIST {'train' if train else 'test'}: {len(ds)} images (md5 verified)")


def fetch_cifar10(root: Path, url: str | None = None) -> None:
    """``cifar-10-python.tar.gz`` (md5 checked), unpacked to ``root/cifar-10-batches-py``,
    whose files torchvision checks against their own md5s when reading."""
    from torchvision.datasets import CIFAR10

    archive = fetch_file(url or CIFAR10.url, root / CIFAR10.filename, md5=CIFAR10.tgz_md5)
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    for train in (True, False):
        ds = CIFAR10(str(root), train=train, download=False)  # md5 of every batch file
        print(f"CIFAR-10 {'train' if train else 'test'}: {len(ds)} images (md5 verified)")


def fetch_cifar100(root: Path, url: str | None = None) -> None:
    """``cifar-100-python.tar.gz`` (md5 checked), unpacked to ``root/cifar-100-python``."""
    from torchvision.datasets import CIFAR100

    archive = fetch_file(url or CIFAR100.url, root / CIFAR100.filename, md5=CIFAR100.tgz_md5)
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    for train in (True, False):
        ds = CIFAR100(str(root), train=train, download=False)  # md5 of every file
        print(f"CIFAR-100 {'train' if train else 'test'}: {len(ds)} images (md5 verified)")


def fetch_svhn(root: Path, url: str | None = None) -> None:
    """``train_32x32.mat`` and ``test_32x32.mat`` (md5 checked) into ``root/svhn``; ``url``:
    a mirror folder holding both files."""
    from torchvision.datasets import SVHN

    for split in ("train", "test"):
        src, filename, md5 = SVHN.split_list[split]
        if url:
            src = f"{url.rstrip('/')}/{filename}"
        fetch_file(src, root / "svhn" / filename, md5=md5)
        ds = SVHN(str(root / "svhn"), split=split, download=False)
        print(f"SVHN {split}: {len(ds)} images (md5 verified)")


def prepare_imagenet(root: Path) -> None:
    """Verify the three ILSVRC-2012 archives in ``root/imagenet`` and unpack them."""
    from torchvision.datasets import imagenet

    folder = root / "imagenet"
    for filename, md5 in imagenet.ARCHIVE_META.values():
        path = folder / filename
        if not path.exists():
            raise FileNotFoundError(
                f"missing {path}: download ILSVRC-2012 ({filename}) from image-net.org (an "
                f"account is needed) and put it in {folder}")
        print(f"checking {filename} against its published md5 ...", file=sys.stderr)
        verify_file(path, md5=md5)
    imagenet.parse_devkit_archive(str(folder))
    for split in ("train", "val"):
        if not (folder / split).is_dir():
            parse = imagenet.parse_train_archive if split == "train" else \
                imagenet.parse_val_archive
            parse(str(folder))
        classes = [d for d in (folder / split).iterdir() if d.is_dir()]
        print(f"ImageNet {split}: {len(classes)} class folders under {folder / split}")


def fetch_alexnet(root: Path) -> None:
    import torch
    from torchvision.models import AlexNet_Weights

    url = AlexNet_Weights.IMAGENET1K_V1.url
    state = torch.hub.load_state_dict_from_url(url, check_hash=True, progress=True)
    out = root / "pretrained" / "alexnet-imagenet.pth"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    print(f"AlexNet weights (sha256 prefix checked) -> {out}")


def fetch_squeezenet(root: Path) -> None:
    """torchvision's SqueezeNet v1.0 ImageNet weights (energy_training's SqueezeNet setup)."""
    import torch
    from torchvision.models import SqueezeNet1_0_Weights

    url = SqueezeNet1_0_Weights.IMAGENET1K_V1.url
    state = torch.hub.load_state_dict_from_url(url, check_hash=True, progress=True)
    out = root / "pretrained" / "squeezenet1_0-imagenet.pth"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    print(f"SqueezeNet v1.0 weights (sha256 prefix checked) -> {out}")


TARGETS = {"mnist": fetch_mnist, "cifar10": fetch_cifar10, "cifar100": fetch_cifar100,
           "svhn": fetch_svhn, "imagenet": prepare_imagenet,
           "alexnet-pretrained": fetch_alexnet, "squeezenet-pretrained": fetch_squeezenet}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(TARGETS))
    parser.add_argument("--root", default=None,
                        help="data folder (default: the book's data root, lib.core.paths.data_dir)")
    parser.add_argument("--mirror", default=None,
                        help="mnist/svhn: a mirror folder holding the files; cifar10/100: the "
                             "archive URL")
    args = parser.parse_args(argv)
    root = data_dir(args.root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        if args.dataset in ("mnist", "cifar10", "cifar100", "svhn"):
            TARGETS[args.dataset](root, args.mirror)
        else:
            TARGETS[args.dataset](root)
    except (ChecksumError, FileNotFoundError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
