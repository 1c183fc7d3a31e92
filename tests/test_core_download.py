"""Downloads resume and verify, against a local HTTP server on 127.0.0.1."""

import hashlib

import pytest

from lib.core.download import ChecksumError, fetch_file
from tests.fixtures.http import Handler as _Handler
from tests.fixtures.http import serve

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture()
def server():
    with serve({"/data.bin": PAYLOAD, "/other.bin": b"x" * 1000}) as url:
        yield url


SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_download_verifies_and_is_not_repeated(server, tmp_path):
    dest = fetch_file(f"{server}/data.bin", tmp_path / "d.bin", sha256=SHA, md5=MD5, quiet=True)
    assert dest.read_bytes() == PAYLOAD
    fetch_file(f"{server}/data.bin", dest, sha256=SHA, quiet=True)
    assert len(_Handler.ranges_seen) == 1, "a verified file is not downloaded again"


def test_an_interrupted_download_is_resumed_not_restarted(server, tmp_path):
    _Handler.cut_after = 300_000
    with pytest.raises(Exception):  # noqa: B017 - the connection drops mid-body
        fetch_file(f"{server}/data.bin", tmp_path / "d.bin", sha256=SHA, quiet=True)
    part = tmp_path / "d.bin.part"
    assert part.stat().st_size == 300_000
    dest = fetch_file(f"{server}/data.bin", tmp_path / "d.bin", sha256=SHA, quiet=True)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert _Handler.ranges_seen[-1] == "bytes=300000-", "the rest was asked for, not all"


def test_a_checksum_mismatch_is_a_clear_error_and_the_file_is_not_used(server, tmp_path):
    with pytest.raises(ChecksumError, match="does not match the published sha256"):
        fetch_file(f"{server}/other.bin", tmp_path / "o.bin", sha256=SHA, quiet=True)
    assert not (tmp_path / "o.bin").exists(), "a bad file must not be left where it is read"
    assert (tmp_path / "o.bin.corrupt").exists(), "nor deleted without a trace"
    (tmp_path / "p.bin").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="md5"):
        fetch_file(f"{server}/data.bin", tmp_path / "p.bin", md5=MD5, quiet=True)


def test_unverified_downloads_are_refused(server, tmp_path):
    with pytest.raises(ValueError, match="sha256 or md5"):
        fetch_file(f"{server}/data.bin", tmp_path / "d.bin")
