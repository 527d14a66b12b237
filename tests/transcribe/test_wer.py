"""The word error rate the accuracy test relies on."""

from __future__ import annotations

import pytest

from tests.transcribe.wer import word_error_rate, word_errors


def test_identical_text_has_no_errors_whatever_the_case_and_punctuation() -> None:
    assert word_errors("the weather is nice today", "The weather is nice today.") == 0


@pytest.mark.parametrize(
    ("hypothesis", "errors"),
    [
        ("the weather is fine today", 1),  # substitution
        ("the weather is nice", 1),  # deletion
        ("the weather is very nice today", 1),  # insertion
        ("", 5),
        ("a b c d e f g", 7),  # 5 substitutions + 2 insertions
    ],
)
def test_each_edit_counts_once(hypothesis: str, errors: int) -> None:
    assert word_errors("the weather is nice today", hypothesis) == errors


def test_corpus_rate_divides_all_errors_by_all_reference_words() -> None:
    assert word_error_rate([("a b c d", "a b c d"), ("e f g h", "e x g")]) == pytest.approx(2 / 8)


def test_empty_reference_set_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one reference word"):
        word_error_rate([])
