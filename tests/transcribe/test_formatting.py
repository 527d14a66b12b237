"""Deepgram's formatting features over recognised words: what each switch writes, and where words go."""

from __future__ import annotations

import pytest

from model_server.models.transcribe.formatting import Formatter, Token, transcript_text
from model_server.models.transcribe.params import Formatting
from model_server.models.transcribe.recognizer import Word


@pytest.fixture(scope="module")
def formatter() -> Formatter:
    loaded = Formatter()
    loaded.load()
    return loaded


def spoken(text: str) -> list[Word]:
    """Words half a second apart, as a recogniser would give them."""
    return [Word(word, index * 0.5, index * 0.5 + 0.4, 0.9) for index, word in enumerate(text.split())]


def written(formatter: Formatter, text: str, *, is_final: bool = True, **switches: object) -> str:
    return transcript_text(formatter.format(spoken(text), Formatting(**switches), is_final=is_final))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my zip code is four seven two nine one", "My zip code is 47291."),
        ("it costs twenty five dollars and fifty cents", "It costs $25.50."),
        ("the meeting starts at ten thirty a m", "The meeting starts at 10:30 a.m."),
        ("i was born on july fourth nineteen ninety", "I was born on July 4 1990."),
        ("three hundred and forty two people", "342 people."),
        ("the weather is nice today", "The weather is nice today."),
    ],
)
def test_smart_format_writes_numbers_money_dates_and_times(
    formatter: Formatter, text: str, expected: str
) -> None:
    assert written(formatter, text, smart_format=True) == expected


def test_numerals_without_punctuation_keep_lower_case(formatter: Formatter) -> None:
    assert written(formatter, "call four seven two nine one", numerals=True) == "call 47291"


def test_a_formatted_number_is_one_word_spanning_its_spoken_words(formatter: Formatter) -> None:
    tokens = formatter.format(
        spoken("code four seven two nine one"), Formatting(numerals=True), is_final=True
    )
    assert [token.word for token in tokens] == ["code", "47291"]
    assert (tokens[1].start, tokens[1].end) == (0.5, 2.9)


def test_without_formatting_words_pass_unchanged(formatter: Formatter) -> None:
    assert written(formatter, "four seven two nine one") == "four seven two nine one"


def test_filler_words_are_dropped_unless_asked_for(formatter: Formatter) -> None:
    assert written(formatter, "uh i think um so") == "i think so"
    assert written(formatter, "uh i think um so", filler_words=True) == "uh i think um so"


def test_dictation_commands_become_punctuation(formatter: Formatter) -> None:
    text = "dear sam comma thanks period new line see you question mark"
    assert written(formatter, text, dictation=True, punctuate=True) == "Dear sam, thanks.\nSee you?"


def test_profanity_is_masked_as_deepgram_masks_it(formatter: Formatter) -> None:
    tokens = formatter.format(
        spoken("what the shit is this"), Formatting(profanity_filter=True), is_final=True
    )
    assert transcript_text(tokens) == "what the **** is this"
    assert "shit" not in {token.word for token in tokens}
    assert written(formatter, "what the shit is this") == "what the shit is this"  # the twin: off


@pytest.mark.parametrize(
    ("kinds", "text", "expected"),
    [
        ({"ssn"}, "my social is one two three four five six seven eight nine", "my social is [REDACTED]"),
        ({"pci"}, "card four one one one one one one one one one one one one one one one", "card [REDACTED]"),
        ({"numbers"}, "room three one two please", "room [REDACTED] please"),
        ({"ssn"}, "room three one two please", "room three one two please"),  # not nine digits
        (
            {"pci"},
            "my social is one two three four five six seven eight nine",
            "my social is one two three four five six seven eight nine",
        ),
    ],
)
def test_redaction_takes_what_each_kind_names(
    formatter: Formatter, kinds: set[str], text: str, expected: str
) -> None:
    tokens = formatter.format(spoken(text), Formatting(redact=frozenset(kinds)), is_final=True)
    assert transcript_text(tokens) == expected


def test_redaction_runs_before_numbers_so_digits_never_leak(formatter: Formatter) -> None:
    text = "my social is one two three four five six seven eight nine"
    tokens = formatter.format(
        spoken(text), Formatting(redact=frozenset({"ssn"}), smart_format=True), is_final=True
    )
    assert transcript_text(tokens) == "My social is [REDACTED]."
    assert not any(character.isdigit() for token in tokens for character in token.word + token.punctuated)


def test_replace_swaps_words_and_phrases_and_removes_with_an_empty_replacement(formatter: Formatter) -> None:
    replace = (("call me", "phone me"), ("tomorrow", ""))
    assert written(formatter, "call me back tomorrow", replace=replace) == "phone me back"


def test_interim_results_get_no_closing_full_stop(formatter: Formatter) -> None:
    assert written(formatter, "i agree", punctuate=True, is_final=False) == "I agree"


def test_words_spell_the_transcript(formatter: Formatter) -> None:
    switches = Formatting(smart_format=True, profanity_filter=True, redact=frozenset({"numbers"}))
    tokens: list[Token] = formatter.format(spoken("the shit costs five dollars"), switches, is_final=True)
    assert transcript_text(tokens) == " ".join(token.punctuated for token in tokens)
