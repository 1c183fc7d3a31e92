"""Word error rate: Levenshtein distance between word sequences over reference length.

``WER = (S + D + I) / N`` with substitutions, deletions, insertions of the minimum-cost
alignment and ``N`` reference words, summed over a corpus before dividing.
"""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Minimum number of substitutions, deletions and insertions turning ``reference`` into
    ``hypothesis`` (``torchaudio.functional.edit_distance``: Levenshtein over any sequences,
    words or characters)."""
    from torchaudio.functional import edit_distance as levenshtein

    return int(levenshtein(list(reference), list(hypothesis)))


def utterance_word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> list[int]:
    """Word edits of each utterance (the unit a paired bootstrap over utterances resamples)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    return [edit_distance(r.split(), h.split())
            for r, h in zip(references, hypotheses, strict=True)]


def word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[int, int]:
    """``(total word edits, total reference words)`` over paired transcripts."""
    errors = sum(utterance_word_errors(references, hypotheses))
    return errors, sum(len(r.split()) for r in references)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER (a fraction; can exceed 1 with many insertions)."""
    errors, words = word_errors(references, hypotheses)
    if words == 0:
        raise ValueError("the references hold no words: WER is undefined")
    return errors / words


def paired_bootstrap(references: Sequence[str], hypotheses_a: Sequence[str],
                     hypotheses_b: Sequence[str], *, n_resamples: int = 1000,
                     seed: int = 0, confidence: float = 0.95) -> dict[str, float]:
    """Bootstrap over utterances of ``WER(a) - WER(b)`` (Bisani & Ney, 2004): the same
    resampled utterances score both systems. Returns the difference on the full set, its
    ``confidence`` interval and the fraction of resamples in which ``b`` is better."""
    import numpy as np

    if not len(references) == len(hypotheses_a) == len(hypotheses_b):
        raise ValueError("references and both hypothesis lists must have the same length")
    words = np.array([len(r.split()) for r in references], dtype=np.float64)
    err_a = np.array([edit_distance(r.split(), h.split())
                      for r, h in zip(references, hypotheses_a, strict=True)], dtype=np.float64)
    err_b = np.array([edit_distance(r.split(), h.split())
                      for r, h in zip(references, hypotheses_b, strict=True)], dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(words), size=(n_resamples, len(words)))
    n = words[idx].sum(1)
    diff = (err_a[idx].sum(1) - err_b[idx].sum(1)) / n
    tail = (1 - confidence) / 2
    return {"difference": float((err_a.sum() - err_b.sum()) / words.sum()),
            "low": float(np.quantile(diff, tail)), "high": float(np.quantile(diff, 1 - tail)),
            "p_b_better": float(np.mean(diff > 0))}
