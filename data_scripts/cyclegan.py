"""Fetch a CycleGAN data set (horse2zebra, summer2winter_yosemite) for the GAN Slimming
chapter at full scale.

    python data_scripts/cyclegan.py horse2zebra --sha256 HEX [--root DIR] [--mirror URL]

The zip comes from CycleGAN's public mirror and unpacks into ``DIR/<name>/`` with the four
folders ``trainA``, ``trainB``, ``testA``, ``testB`` of jpgs that
``lib.vision.cartoon.cyclegan_folder`` reads (``DIR`` defaults to the book's data root).
The mirror publishes no checksum: pass the sha256 of the zip you trust (``--sha256``); the
download is refused without one (``lib.core.download.fetch_file``). After unpacking, the
image counts of each folder are checked against the published ones.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIRROR = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
#: images per folder (CycleGAN's README / the released zips)
COUNTS = {"horse2zebra": {"trainA": 1067, "trainB": 1334, "testA": 120, "testB": 140},
          "summer2winter_yosemite": {"trainA": 1231, "trainB": 962, "testA": 309,
                                     "testB": 238}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(COUNTS))
    parser.add_argument("--sha256", required=True, help="sha256 of the zip you trust")
    parser.add_argument("--root", default=None, help="data root (default: the book's)")
    parser.add_argument("--mirror", default=MIRROR)
    args = parser.parse_args(argv)
    from lib.core.download import fetch_file
    from lib.core.paths import data_dir

    root = Path(args.root) if args.root else data_dir()
    archive = fetch_file(f"{args.mirror}/{args.name}.zip", root / f"{args.name}.zip",
                         sha256=args.sha256)
    with zipfile.ZipFile(archive) as z:
        z.extractall(root)
    bad = {}
    for split, n in COUNTS[args.name].items():
        got = len(list((root / args.name / split).glob("*.jpg")))
        if got != n:
            bad[split] = (got, n)
    if bad:
        print(f"unexpected image counts (got, expected): {bad}", file=sys.stderr)
        return 1
    print(f"{args.name} ready under {root / args.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
