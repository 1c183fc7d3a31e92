"""Download LibriSpeech from openslr.org, verify each archive, extract it.

    python data_scripts/librispeech.py --root data --splits train-clean-100 dev-other

gives ``data/LibriSpeech/<split>/<speaker>/<chapter>/*.flac`` + ``*.trans.txt``, the layout
``lib.asr.librispeech`` reads. Each archive is checked against openslr's published MD5
(https://www.openslr.org/resources/12/md5sum.txt) and torchaudio's SHA-256 before it is
extracted; a mismatch deletes the download and fails. ``--splits 960h`` fetches the three
training splits, ``--splits all`` everything. Archives already present and verified are not
downloaded again.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tarfile
import urllib.request
from pathlib import Path

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


class ChecksumError(ValueError):
    """A downloaded archive does not match its published checksum."""


def file_digests(path: Path, chunk: int = 1 << 22) -> tuple[str, str]:
    """``(md5, sha256)`` hex digests of a file, read once."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            md5.update(block)
            sha.update(block)
    return md5.hexdigest(), sha.hexdigest()


def verify_archive(path: Path, split: str) -> None:
    """Raise ``ChecksumError`` unless ``path`` has the published MD5 and SHA-256 of ``split``."""
    if split not in CHECKSUMS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(CHECKSUMS)}")
    md5, sha = file_digests(path)
    want_md5, want_sha = CHECKSUMS[split]
    if (md5, sha) != (want_md5, want_sha):
        raise ChecksumError(f"{path}: md5 {md5} / sha256 {sha[:16]}... do not match the "
                            f"published md5 {want_md5} / sha256 {want_sha[:16]}...")


def download(url: str, dest: Path) -> None:
    """Stream ``url`` to ``dest`` through a temporary file (no partial file left behind)."""
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url) as response, open(tmp, "wb") as out:
        total = int(response.headers.get("Content-Length", 0))
        done = 0
        while block := response.read(1 << 22):
            out.write(block)
            done += len(block)
            if total:
                print(f"\r{dest.name}: {100 * done / total:5.1f}%", end="", file=sys.stderr)
    print(file=sys.stderr)
    tmp.replace(dest)


def safe_extract(archive: Path, root: Path) -> None:
    """Extract a tar.gz under ``root``, refusing members that would land outside it."""
    root = root.resolve()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            target = (root / member.name).resolve()
            if root not in target.parents and target != root:
                raise ValueError(f"{archive}: member {member.name!r} escapes {root}")
        tar.extractall(root, filter="data")


def fetch(root: Path, split: str, keep_archive: bool = False) -> Path:
    """Download, verify and extract one split; returns ``root/LibriSpeech/<split>``."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / "LibriSpeech" / split
    marker = target / ".verified"
    if marker.exists():
        print(f"{split}: already extracted and verified", file=sys.stderr)
        return target
    archive = root / f"{split}.tar.gz"
    if archive.exists():
        try:
            verify_archive(archive, split)
        except ChecksumError:
            archive.unlink()
    if not archive.exists():
        download(f"{BASE_URL}/{split}.tar.gz", archive)
        try:
            verify_archive(archive, split)
        except ChecksumError:
            archive.unlink()
            raise
    safe_extract(archive, root)
    marker.write_text(f"md5 {CHECKSUMS[split][0]}\n")
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="data", help="folder that will hold LibriSpeech/")
    parser.add_argument("--splits", nargs="+", default=["960h", "eval"],
                        help="splits, or groups 960h / eval / all")
    parser.add_argument("--keep-archives", action="store_true")
    args = parser.parse_args(argv)
    for split in expand_splits(args.splits):
        print(fetch(Path(args.root), split, args.keep_archives))


if __name__ == "__main__":
    main()
