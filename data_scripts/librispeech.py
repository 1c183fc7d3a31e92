"""Download LibriSpeech from openslr.org, verify each archive, extract it.

    python data_scripts/librispeech.py [--root DIR] --splits train-clean-100 dev-other

gives ``DIR/LibriSpeech/<split>/<speaker>/<chapter>/*.flac`` + ``*.trans.txt``, the layout
``lib.asr.librispeech`` reads. ``DIR`` defaults to the book's data root
(``$BOOK_DATA_DIR``, else the user's data dir: ``lib.core.paths.data_dir``), the folder
the speech chapters read at full scale. Each archive is checked against openslr's
published MD5 (https://www.openslr.org/resources/12/md5sum.txt) and torchaudio's SHA-256
before it is extracted; a mismatch keeps the download aside as ``.corrupt`` and fails. An
interrupted download resumes where it stopped when the command is run again.
``--splits 960h`` fetches the three training splits, ``eval`` the dev and test splits,
``all`` everything.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.core.download import ChecksumError, fetch_file  # noqa: E402
from lib.core.paths import data_dir  # noqa: E402

BASE_URL = "https://www.openslr.org/resources/12"

#: openslr's md5sum.txt and torchaudio.datasets.librispeech's SHA-256 of each archive
CHECKSUMS = {
    "dev-clean": ("42e2234ba48799c1f50f24a7926300a1",
                  "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3"),
    "dev-other": ("c8d0bcc9cca99d4f8b62fcc847357931",
                  "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365"),
    "test-clean": ("32fa31d27d2e1cad72775fee3f4849a9",
                   "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23"),
    "test-other": ("fb5a50374b501bb3bac4815ee91d3135",
                   "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29"),
    "train-clean-100": ("2a93770f6d5c6c964bc36631d331a522",
                        "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2"),
    "train-clean-360": ("c0e676e450a7ff2f54aeade5171606fa",
                        "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf"),
    "train-other-500": ("d1a0fd59409feb2c614ce4d30c387708",
                        "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2"),
}
GROUPS = {"960h": ("train-clean-100", "train-clean-360", "train-other-500"),
          "eval": ("dev-clean", "dev-other", "test-clean", "test-other"),
          "all": tuple(CHECKSUMS)}

__all__ = ["BASE_URL", "CHECKSUMS", "ChecksumError", "GROUPS", "expand_splits", "fetch",
           "safe_extract"]


def safe_extract(archive: Path, root: Path) -> None:
    """Extract a tar.gz under ``root``, refusing members that would land outside it."""
    root = root.resolve()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            target = (root / member.name).resolve()
            if root not in target.parents and target != root:
                raise ValueError(f"{archive}: member {member.name!r} escapes {root}")
        tar.extractall(root, filter="data")


def fetch(root: Path, split: str, keep_archive: bool = False,
          base_url: str = BASE_URL) -> Path:
    """Download (resuming), verify and extract one split; returns ``root/LibriSpeech/<split>``."""
    if split not in CHECKSUMS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(CHECKSUMS)}")
    root.mkdir(parents=True, exist_ok=True)
    target = root / "LibriSpeech" / split
    marker = target / ".verified"
    if marker.exists():
        print(f"{split}: already extracted and verified", file=sys.stderr)
        return target
    md5, sha256 = CHECKSUMS[split]
    archive = fetch_file(f"{base_url}/{split}.tar.gz", root / f"{split}.tar.gz", md5=md5,
                         sha256=sha256)
    safe_extract(archive, root)
    marker.write_text(f"md5 {md5}\n")
    if not keep_archive:
        archive.unlink()
    return target


def expand_splits(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        for split in GROUPS.get(name, (name,)):
            if split not in CHECKSUMS:
                raise ValueError(f"unknown split {split!r}; valid: {', '.join(CHECKSUMS)} or "
                                 f"{', '.join(GROUPS)}")
            if split not in out:
                out.append(split)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None,
                        help="folder that will hold LibriSpeech/ (default: the book's data root)")
    parser.add_argument("--splits", nargs="+", default=["960h", "eval"],
                        help="splits, or groups 960h / eval / all")
    parser.add_argument("--keep-archives", action="store_true")
    parser.add_argument("--base-url", default=BASE_URL, help="a mirror of openslr's resource 12")
    args = parser.parse_args(argv)
    root = data_dir(args.root)
    try:
        for split in expand_splits(args.splits):
            print(fetch(root, split, args.keep_archives, args.base_url))
    except (ChecksumError, ValueError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
