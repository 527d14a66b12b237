"""Word error rate: word-level edit distance (substitutions, deletions, insertions) over reference words."""

from __future__ import annotations

import re
from collections.abc import Iterable

WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, so "Nice today." and "nice today" compare equal."""
    return WORD.findall(text.lower())


def word_errors(reference: str, hypothesis: str) -> int:
    """The fewest substitutions, deletions and insertions that turn the reference into the hypothesis."""
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def word_error_rate(pairs: Iterable[tuple[str, str]]) -> float:
    """Corpus WER over (reference, hypothesis) pairs: total errors over total reference words."""
    errors = reference_words = 0
    for reference, hypothesis in pairs:
        errors += word_errors(reference, hypothesis)
        reference_words += len(words(reference))
    if reference_words == 0:
        raise ValueError("word error rate needs at least one reference word")
    return errors / reference_words
