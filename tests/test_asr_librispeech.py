"""LibriSpeech reader on a fixture tree in the exact on-disk layout (FLAC + trans.txt)."""

import hashlib
import importlib.util
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.asr.features import log_mel
from lib.asr.librispeech import LibriSpeechSet, read_audio, read_manifest
from lib.asr.text import CharTokenizer, SentencePieceTokenizer, tokenizer_from_state
from tests.fixtures.formats import LIBRISPEECH_TRANSCRIPTS, write_librispeech

REPO = Path(__file__).resolve().parents[1]
TRANSCRIPTS = LIBRISPEECH_TRANSCRIPTS


def write_fixture(root: Path, split: str = "dev-other", seed: int = 0) -> dict[str, np.ndarray]:
    return write_librispeech(root, split, seed)


def test_manifest_lists_every_utterance_with_its_transcript(tmp_path):
    write_fixture(tmp_path)
    utts = read_manifest(tmp_path, "dev-other")
    assert [u.utterance_id for u in utts] == sorted(u.utterance_id for u in utts)
    assert len(utts) == sum(len(v) for v in TRANSCRIPTS.values())
    by_id = {u.utterance_id: u for u in utts}
    assert by_id["1988-24833-0001"].transcript == "GRADUALLY MAKE THEMSELVES AT HOME"
    assert by_id["103-1241-0000"].speaker == "103" and by_id["103-1241-0000"].chapter == "1241"


def test_flac_audio_is_read_back_exactly_and_featurised(tmp_path):
    audio = write_fixture(tmp_path)
    wave = read_audio(tmp_path / "LibriSpeech/dev-other/103/1240/103-1240-0001.flac")
    assert torch.equal(wave, torch.from_numpy(audio["103-1240-0001"].astype(np.float32) / 32768))
    ds = LibriSpeechSet(tmp_path, ["dev-other"], CharTokenizer())
    i = ds.texts.index("it's a fine day")
    feats, labels = ds[i]
    assert torch.allclose(feats, log_mel(torch.from_numpy(audio["103-1241-0000"])))
    assert CharTokenizer().decode(labels) == "it's a fine day"
    batch = ds.batch([0, 1, 2])
    assert batch.features.shape == (3, int(batch.lengths.max()), 80)
    assert ds.lengths()[i] == feats.shape[0]


def test_missing_split_names_the_fetch_script(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_scripts/librispeech.py"):
        read_manifest(tmp_path, "test-other")
    with pytest.raises(ValueError, match="unknown LibriSpeech split"):
        read_manifest(tmp_path, "test-noisy")


def test_malformed_transcript_line_is_an_error(tmp_path):
    write_fixture(tmp_path)
    trans = tmp_path / "LibriSpeech/dev-other/103/1241/103-1241.trans.txt"
    trans.write_text("999-1-0000 WRONG SPEAKER\n")
    with pytest.raises(ValueError, match="malformed"):
        read_manifest(tmp_path, "dev-other")


def test_tokenizers_round_trip_and_put_blank_last(tmp_path):
    texts = [t for lines in TRANSCRIPTS.values() for t in lines] * 20
    sp = SentencePieceTokenizer.train(texts, vocab_size=40)
    for t in texts[:6]:
        ids = sp.encode(t)
        assert max(ids) < sp.blank == sp.num_symbols - 1
        assert sp.decode(ids) == t.lower()
    again = tokenizer_from_state(sp.state())
    assert again.encode(texts[0]) == sp.encode(texts[0])
    ch = CharTokenizer()
    assert ch.decode(ch.encode("It's  a DAY")) == "it's a day" and ch.blank == 28
    with pytest.raises(ValueError, match="alphabet"):
        ch.encode("café")


def _load_script(name: str = "librispeech"):
    spec = importlib.util.spec_from_file_location(f"{name}_script",
                                                  REPO / "data_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fetch_script_downloads_resumes_verifies_and_extracts_safely(tmp_path, monkeypatch):
    from tests.fixtures.http import Handler, serve

    script = _load_script()
    src = tmp_path / "src"
    write_fixture(src)
    archive = tmp_path / "dev-other.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "LibriSpeech", arcname="LibriSpeech")
    data = archive.read_bytes()
    digests = (hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(script.CHECKSUMS, "dev-other", digests)
    with serve({"/dev-other.tar.gz": data, "/bad/dev-other.tar.gz": data[:-10] + b"0" * 10}
               ) as url:
        Handler.cut_after = len(data) // 2  # the first attempt is cut off half way
        assert script.main(["--root", str(tmp_path / "data"), "--splits", "dev-other",
                            "--base-url", url]) == 1
        assert (tmp_path / "data" / "dev-other.tar.gz.part").stat().st_size == len(data) // 2
        assert script.main(["--root", str(tmp_path / "data"), "--splits", "dev-other",
                            "--base-url", url]) == 0
        assert Handler.ranges_seen[-1] == f"bytes={len(data) // 2}-", "resumed, not restarted"
        assert len(read_manifest(tmp_path / "data", "dev-other")) == 6
        # a corrupted download is refused: never extracted, kept aside, a clear error
        with pytest.raises(script.ChecksumError, match="does not match the published"):
            script.fetch(tmp_path / "other", "dev-other", base_url=f"{url}/bad")
        assert not (tmp_path / "other/LibriSpeech").exists()
        assert (tmp_path / "other/dev-other.tar.gz.corrupt").exists()
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path / "data"))
    assert script.main(["--splits", "dev-other"]) == 0, "the default root is the data root"
    # a member escaping the root is refused
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ValueError, match="escapes"):
        script.safe_extract(evil, tmp_path / "x")
    assert script.expand_splits(["960h", "dev-other"])[-1] == "dev-other"
    with pytest.raises(ValueError, match="unknown split"):
        script.expand_splits(["train-clean-1000"])


def test_missing_split_names_the_command_that_fills_the_path_the_chapter_reads(tmp_path,
                                                                              monkeypatch):
    from lib.asr.recipes import load_data
    from lib.asr.scales import DENSE_RECIPES

    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path / "books-data"))
    with pytest.raises(FileNotFoundError) as err:
        load_data(DENSE_RECIPES["full"])
    message = str(err.value)
    assert f"--root {tmp_path / 'books-data'}" in message and "librispeech.py" in message


def test_subset_is_a_view_of_those_utterances_in_that_order(tmp_path):
    write_fixture(tmp_path)
    full = LibriSpeechSet(tmp_path, "dev-other", CharTokenizer())
    part = full.subset([4, 1])
    assert len(part) == 2 and part.texts == [full.texts[4], full.texts[1]]
    assert part.speakers == [full.speakers[4], full.speakers[1]]
    assert torch.equal(part[0][0], full[4][0]) and part[1][1] == full[1][1]
    assert part.lengths() == [full.lengths()[4], full.lengths()[1]]
