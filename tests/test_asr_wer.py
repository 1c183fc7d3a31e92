"""WER: edit distance against brute force and against jiwer."""

import functools
import random

import jiwer
import pytest

from lib.asr.wer import (
    edit_distance,
    paired_bootstrap,
    utterance_word_errors,
    word_error_rate,
    word_errors,
)


def _brute_force_distance(a, b):
    @functools.cache
    def d(i, j):
        if i == len(a):
            return len(b) - j
        if j == len(b):
            return len(a) - i
        return min(d(i + 1, j) + 1, d(i, j + 1) + 1, d(i + 1, j + 1) + (a[i] != b[j]))

    return d(0, 0)


def test_edit_distance_matches_brute_force_recursion():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abc") for _ in range(rng.randint(0, 7))]
        b = [rng.choice("abc") for _ in range(rng.randint(0, 7))]
        assert edit_distance(a, b) == _brute_force_distance(tuple(a), tuple(b))


def test_corpus_wer_matches_jiwer():
    rng = random.Random(1)
    words = ["one", "two", "three", "oh", "zero"]
    refs = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 7))) for _ in range(50)]
    hyps = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 8))) for _ in range(50)]
    assert word_error_rate(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)


def test_known_cases_and_errors():
    assert word_errors(["one two three"], ["one three"]) == (1, 3)      # a deletion
    assert word_errors(["one two"], ["one two two"]) == (1, 2)          # an insertion
    assert word_error_rate(["a b"], ["c d e f"]) == 2.0                 # can exceed 1
    assert utterance_word_errors(["one two three", "a b", "x"], ["one three", "c d e f", "x"]) \
        == [1, 4, 0]                                                    # per utterance
    with pytest.raises(ValueError, match="hypotheses"):
        utterance_word_errors(["a"], [])
    with pytest.raises(ValueError, match="hypotheses"):
        word_error_rate(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="no words"):
        word_error_rate([""], [""])


def test_paired_bootstrap_difference_and_interval():
    refs = ["one two three four"] * 40
    worse = ["one two three five"] * 40             # 25% WER
    better = ["one two three four"] * 30 + ["one two"] * 10  # 12.5% WER
    out = paired_bootstrap(refs, worse, better, n_resamples=500)
    assert out["difference"] == pytest.approx(0.125)
    assert out["low"] > 0 and out["high"] <= 0.25 and out["p_b_better"] == 1.0
    same = paired_bootstrap(refs, worse, worse, n_resamples=50)
    assert same["difference"] == same["low"] == same["high"] == 0.0
