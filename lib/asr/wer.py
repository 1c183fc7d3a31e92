"""Word error rate: Levenshtein distance between word sequences over reference length.

``WER = (S + D + I) / N`` with substitutions, deletions, insertions of the minimum-cost
alignment and ``N`` reference words, summed over a corpus before dividing.
"""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Minimum number of substitutions, deletions and insertions turning ``reference`` into
    ``hypothesis`` (dynamic programming, one row at a time)."""
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, h in enumerate(hypothesis, start=1):
            current[j] = min(previous[j] + 1,             # deletion of r
                             current[j - 1] + 1,          # insertion of h
                             previous[j - 1] + (r != h))  # substitution (or match)
        previous = current
    return previous[-1]


def word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[int, int]:
    """``(total word edits, total reference words)`` over paired transcripts."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    pairs = zip(references, hypotheses, strict=True)
    errors = sum(edit_distance(r.split(), h.split()) for r, h in pairs)
    return errors, sum(len(r.split()) for r in references)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER (a fraction; can exceed 1 with many insertions)."""
    errors, words = word_errors(references, hypotheses)
    if words == 0:
        raise ValueError("the references hold no words: WER is undefined")
    return errors / words
