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


def _load_script():
    spec = importlib.util.spec_from_file_location("librispeech_script",
                                                  REPO / "data_scripts" / "librispeech.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fetch_script_verifies_checksums_and_extracts_safely(tmp_path, monkeypatch):
    script = _load_script()
    assert set(script.CHECKSUMS) == {"dev-clean", "dev-other", "test-clean", "test-other",
                                     "train-clean-100", "train-clean-360", "train-other-500"}
    assert script.CHECKSUMS["test-other"][0] == "fb5a50374b501bb3bac4815ee91d3135"
    # a tar.gz of the fixture tree, "published" with its own digests
    src = tmp_path / "src"
    write_fixture(src)
    archive = tmp_path / "dev-other.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "LibriSpeech", arcname="LibriSpeech")
    data = archive.read_bytes()
    digests = (hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(script.CHECKSUMS, "dev-other", digests)
    monkeypatch.setattr(script, "download",
                        lambda url, dest: dest.write_bytes(data))
    out = script.fetch(tmp_path / "data", "dev-other")
    assert out == tmp_path / "data/LibriSpeech/dev-other"
    assert len(read_manifest(tmp_path / "data", "dev-other")) == 6
    # a corrupted download is refused and removed
    monkeypatch.setattr(script, "download",
                        lambda url, dest: dest.write_bytes(data[:-10] + b"0" * 10))
    with pytest.raises(script.ChecksumError):
        script.fetch(tmp_path / "other", "dev-other")
    assert not (tmp_path / "other/dev-other.tar.gz").exists()
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
