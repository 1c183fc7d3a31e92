"""Downloads that resume and verify: the one fetcher of every ``data_scripts/`` command.

``fetch_file(url, dest, sha256=..., md5=...)`` streams ``url`` into ``dest.part``; a rerun
after an interruption asks the server for the rest (an HTTP ``Range`` request) and appends
to it, so a 150 GB archive is never restarted from zero. When the file is complete its
digest is checked against the published one: on a mismatch the file is moved aside to
``dest.corrupt`` (never used, never silently deleted) and ``ChecksumError`` says which
digest was expected and which was found. A ``dest`` already present is verified, not
downloaded again.

Written here rather than taken from ``torchvision.datasets.utils.download_url``: that one
restarts a partial download from zero and deletes nothing it cannot verify.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A file does not match its published checksum."""


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | Path, *, sha256: str | None = None, md5: str | None = None) -> None:
    """Raise ``ChecksumError`` unless ``path`` has the given digests (at least one needed)."""
    if sha256 is None and md5 is None:
        raise ValueError(f"{path}: give the published sha256 or md5 to verify against")
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is None:
            continue
        got = file_digest(path, algorithm)
        if got.lower() != expected.lower():
            raise ChecksumError(f"{path}: {algorithm} {got} does not match the published "
                                f"{algorithm} {expected}; the file was not used")


def fetch_file(url: str, dest: str | Path, *, sha256: str | None = None,
               md5: str | None = None, quiet: bool = False, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``) and verify it; return ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if sha256 is None and md5 is None:
        raise ValueError(f"{url}: refusing an unverified download; give its sha256 or md5")
    if dest.exists():
        verify_file(dest, sha256=sha256, md5=md5)
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part is already whole: nothing left to send
            response = None
        else:
            raise
    if response is not None:
        with response:
            resumed = have and response.status == 206
            mode = "ab" if resumed else "wb"  # a server without Range support starts over
            done = have if resumed else 0
            total = response.headers.get("Content-Length")
            total = int(total) + done if total is not None else None
            with open(part, mode) as out:
                while block := response.read(CHUNK):
                    out.write(block)
                    done += len(block)
                    if not quiet and total:
                        print(f"\r{dest.name}: {100 * done / total:5.1f}%", end="",
                              file=sys.stderr)
            if not quiet and total:
                print(file=sys.stderr)
            if total is not None and done < total:
                raise ConnectionError(f"{url}: the connection closed after {done} of {total} "
                                      f"bytes; run the same command again to resume from "
                                      f"{part}")
    try:
        verify_file(part, sha256=sha256, md5=md5)
    except ChecksumError:
        os.replace(part, dest.with_name(dest.name + ".corrupt"))
        raise
    os.replace(part, dest)
    return dest
