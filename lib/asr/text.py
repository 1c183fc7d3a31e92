"""Tokenizers: text <-> label ids, with the RNN-T blank as the *last* symbol.

torchaudio's ``RNNTBeamSearch`` reads the blank's score from the last column of the joiner
output (``next_token_probs[:, -1]``), and its pretrained LibriSpeech model puts the blank at
index 4096 after 4096 SentencePiece units. We follow the same convention everywhere: labels
are ``0 .. num_symbols - 2`` and ``blank = num_symbols - 1``.
"""

from __future__ import annotations

import io
import string
from collections.abc import Iterable, Sequence
from typing import Any

import torch


class WordTokenizer:
    """One label per word of a closed vocabulary (the digit task: eleven words)."""

    kind = "word"

    def __init__(self, words: Sequence[str]):
        if len(set(words)) != len(words) or not words:
            raise ValueError(f"vocabulary must be non-empty and without duplicates: {words}")
        self.words = tuple(words)
        self._index = {w: i for i, w in enumerate(self.words)}

    @property
    def num_symbols(self) -> int:
        return len(self.words) + 1

    @property
    def blank(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            if word not in self._index:
                raise ValueError(f"word {word!r} is not in the vocabulary {self.words}")
            ids.append(self._index[word])
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.words[i] for i in ids if i != self.blank)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "words": list(self.words)}


class CharTokenizer:
    """Letters, apostrophe and a word separator (LibriSpeech transcripts, lower-cased)."""

    kind = "char"
    SPACE = "|"

    def __init__(self, alphabet: str = string.ascii_lowercase + "'"):
        self.symbols = (self.SPACE, *alphabet)
        self._index = {c: i for i, c in enumerate(self.symbols)}

    @property
    def num_symbols(self) -> int:
        return len(self.symbols) + 1

    @property
    def blank(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        out = []
        for c in " ".join(text.lower().split()):
            key = self.SPACE if c == " " else c
            if key not in self._index:
                raise ValueError(f"character {c!r} is not in the alphabet {''.join(self.symbols)}")
            out.append(self._index[key])
        return out

    def decode(self, ids: Iterable[int]) -> str:
        chars = "".join(self.symbols[i] for i in ids if i != self.blank)
        return " ".join(chars.replace(self.SPACE, " ").split())

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "alphabet": "".join(self.symbols[1:])}


class SentencePieceTokenizer:
    """SentencePiece units (``num_symbols = vocab_size + 1``), as in torchaudio's recipe."""

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.model_proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self.model_proto)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers may pickle the dataset
        return {"model_proto": self.model_proto}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model_proto"])

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int,
              model_type: str = "unigram") -> SentencePieceTokenizer:
        """Train on ``texts`` (lower-cased). No BOS/EOS; id 0 is ``<unk>``."""
        import sentencepiece as spm

        if model_type not in ("unigram", "bpe", "char", "word"):
            raise ValueError(f"unknown model_type {model_type!r}; valid: unigram, bpe, char, word")
        buffer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=(t.lower() for t in texts), model_writer=buffer,
            vocab_size=vocab_size, model_type=model_type, bos_id=-1, eos_id=-1, unk_id=0,
            character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
        return cls(buffer.getvalue())

    @property
    def num_symbols(self) -> int:
        return self._sp.get_piece_size() + 1

    @property
    def blank(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text.lower()))

    def decode(self, ids: Iterable[int]) -> str:
        return self._sp.decode([i for i in ids if i != self.blank])

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind,
                "model_proto": torch.frombuffer(bytearray(self.model_proto), dtype=torch.uint8)}


def tokenizer_from_state(state: dict[str, Any]):
    """Rebuild a tokenizer from ``tokenizer.state()`` (as stored in an artifact)."""
    kind = state.get("kind")
    if kind == "word":
        return WordTokenizer(state["words"])
    if kind == "char":
        return CharTokenizer(state["alphabet"])
    if kind == "sentencepiece":
        return SentencePieceTokenizer(bytes(state["model_proto"].numpy().tobytes()))
    raise ValueError(f"unknown tokenizer kind {kind!r}; valid: word, char, sentencepiece")
