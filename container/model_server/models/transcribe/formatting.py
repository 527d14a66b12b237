"""Recognised words to Deepgram's transcript and ``words[]``: every formatting feature of ``v1/listen``.

Each feature rewrites a list of ``Token`` (a word with its stream times), so ``words[]`` always spells
the transcript: a feature that merges words (redaction, numbers, ``replace``) gives one token that
spans their times, as Deepgram's ``words[]`` do. Order: filler words go, then redaction (on the
spoken digits, so a formatted number cannot escape it), numbers (inverse text normalisation with
``damga``), dictation commands, ``replace``, the profanity mask (``better_profanity``'s word list,
masked as Deepgram masks: ``****``), and last sentence case and a closing full stop.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from better_profanity import profanity
from damga import Normalizer

from model_server.models.transcribe.params import Formatting
from model_server.models.transcribe.recognizer import Word

#: What Deepgram leaves out unless ``filler_words=true``.
FILLER_WORDS = frozenset({"uh", "um", "uhm", "mm", "mhm", "hmm", "er", "ah"})
DIGITS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
TENS_AND_MORE = (
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty "
)
TENS_AND_MORE += "forty fifty sixty seventy eighty ninety hundred thousand million billion"
NUMBER_WORDS = frozenset(DIGITS) | frozenset(TENS_AND_MORE.split(" "))
#: Deepgram's redaction: ``numbers`` takes any run of three or more numerals, ``ssn`` nine digits,
#: ``pci`` a card number (13 to 19 digits).
REDACTED = "[REDACTED]"
MIN_REDACTED_NUMERALS = 3
SSN_DIGITS = 9
CARD_DIGITS = range(13, 20)
#: Spoken dictation commands (Deepgram's ``dictation``) and the punctuation they become.
DICTATION = {
    ("comma",): ",",
    ("period",): ".",
    ("full", "stop"): ".",
    ("question", "mark"): "?",
    ("exclamation", "mark"): "!",
    ("exclamation", "point"): "!",
    ("colon",): ":",
    ("semicolon",): ";",
    ("new", "line"): "\n",
    ("new", "paragraph"): "\n\n",
}
PROFANITY_MASK = "****"


@dataclass(frozen=True)
class Token:
    """One entry of ``words[]``: the word as recognised (or merged), and how the transcript writes it."""

    word: str
    punctuated: str
    start: float
    end: float
    confidence: float


class Formatter:
    """The process's formatting resources, loaded once: the number normaliser and the profanity list."""

    def __init__(self) -> None:
        self._normalizer: Any = None
        self._lock = threading.Lock()  # the normaliser is not documented as thread-safe

    def load(self) -> None:
        self._normalizer = Normalizer(mode="itn", lang="en")
        profanity.load_censor_words()

    def format(self, words: Sequence[Word], formatting: Formatting, *, is_final: bool) -> list[Token]:
        """The tokens of one result under ``formatting``."""
        tokens = [Token(w.text, w.text, w.start, w.end, w.confidence) for w in words]
        if not formatting.filler_words:
            tokens = [token for token in tokens if token.word not in FILLER_WORDS]
        if formatting.redact:
            tokens = _redact(tokens, formatting.redact)
        if formatting.numerals or formatting.smart_format:
            tokens = self._numbers(tokens)
        if formatting.dictation:
            tokens = _dictation(tokens)
        if formatting.replace:
            tokens = _replace(tokens, formatting.replace)
        if formatting.profanity_filter:
            tokens = [_masked(token) for token in tokens]
        if formatting.punctuate or formatting.smart_format or formatting.dictation:
            tokens = _sentence_case(
                tokens, full_stop=is_final and (formatting.punctuate or formatting.smart_format)
            )
        return tokens

    def _numbers(self, tokens: list[Token]) -> list[Token]:
        if self._normalizer is None:
            raise RuntimeError("Formatter.load() has not run")
        spoken = [token.punctuated for token in tokens]
        with self._lock:
            written = str(self._normalizer.normalize(" ".join(spoken))).split()
        return _join_digit_runs(_align(tokens, spoken, written))


def transcript_text(tokens: Sequence[Token]) -> str:
    """The transcript as Deepgram writes it: punctuated words joined by spaces (none after a newline)."""
    text = ""
    for token in tokens:
        text += token.punctuated if not text or text.endswith("\n") else " " + token.punctuated
    return text


def _merge(tokens: Sequence[Token], word: str, punctuated: str | None = None) -> Token:
    """One token for ``tokens`` (at least one), spanning their times."""
    return Token(
        word=word,
        punctuated=word if punctuated is None else punctuated,
        start=tokens[0].start,
        end=tokens[-1].end,
        confidence=min(token.confidence for token in tokens),
    )


def _runs(tokens: list[Token], member: Callable[[Token], bool]) -> list[tuple[int, int]]:
    """(start, end) index ranges of maximal runs of tokens for which ``member`` is true."""
    runs, start = [], None
    for index, token in enumerate([*tokens, None]):
        inside = token is not None and member(token)
        if inside and start is None:
            start = index
        elif not inside and start is not None:
            runs.append((start, index))
            start = None
    return runs


def _rebuild(tokens: list[Token], spans: list[tuple[int, int, list[Token]]]) -> list[Token]:
    """``tokens`` with each (start, end) range replaced by its new tokens."""
    out, position = [], 0
    for start, end, new in spans:
        out += tokens[position:start] + new
        position = end
    return out + tokens[position:]


def _redact(tokens: list[Token], kinds: frozenset[str]) -> list[Token]:
    spans = []
    for start, end in _runs(tokens, lambda token: token.word in NUMBER_WORDS):
        run = tokens[start:end]
        digits = len(run) if all(token.word in DIGITS for token in run) else 0
        if (
            ("numbers" in kinds and len(run) >= MIN_REDACTED_NUMERALS)
            or ("ssn" in kinds and digits == SSN_DIGITS)
            or ("pci" in kinds and digits in CARD_DIGITS)
        ):
            spans.append((start, end, [_merge(run, REDACTED)]))
    return _rebuild(tokens, spans)


def _align(tokens: list[Token], spoken: list[str], written: list[str]) -> list[Token]:
    """Tokens for the normaliser's output words, each spanning the spoken words it came from."""
    out: list[Token] = []
    matcher = difflib.SequenceMatcher(a=spoken, b=written, autojunk=False)
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if tag == "equal":
            out += tokens[a_start:a_end]
        elif b_end > b_start and a_end > a_start:
            source = tokens[a_start:a_end]
            if b_end - b_start == 1:
                out.append(_merge(source, written[b_start].lower(), written[b_start]))
            else:
                for offset, text in enumerate(written[b_start:b_end]):
                    piece = source[min(offset, len(source) - 1)]
                    out.append(replace(piece, word=text.lower(), punctuated=text))
    return out


def _join_digit_runs(tokens: list[Token]) -> list[Token]:
    """Digits read one by one ("four seven two nine one") written as one number, as Deepgram does."""
    spans = [
        (start, end, [_merge(tokens[start:end], "".join(DIGITS[t.word] for t in tokens[start:end]))])
        for start, end in _runs(tokens, lambda token: token.word in DIGITS and token.punctuated == token.word)
        if end - start >= 2
    ]
    return _rebuild(tokens, spans)


def _dictation(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    index = 0
    while index < len(tokens):
        for command, mark in DICTATION.items():
            if tuple(token.word for token in tokens[index : index + len(command)]) == command:
                if out:
                    out[-1] = replace(out[-1], punctuated=out[-1].punctuated + mark)
                index += len(command)
                break
        else:
            out.append(tokens[index])
            index += 1
    return out


def _replace(tokens: list[Token], pairs: tuple[tuple[str, str], ...]) -> list[Token]:
    for find, replacement in pairs:
        phrase = tuple(find.split())
        out: list[Token] = []
        index = 0
        while index < len(tokens):
            window = tokens[index : index + len(phrase)]
            if tuple(token.word for token in window) == phrase:
                if replacement:
                    out.append(_merge(window, replacement))
                index += len(phrase)
            else:
                out.append(tokens[index])
                index += 1
        tokens = out
    return tokens


def _masked(token: Token) -> Token:
    if not profanity.contains_profanity(token.word):
        return token
    return replace(token, word=PROFANITY_MASK, punctuated=PROFANITY_MASK)


def _sentence_case(tokens: list[Token], *, full_stop: bool) -> list[Token]:
    """Capitals at sentence starts and for "I"; a closing full stop on a final result."""
    out = []
    sentence_start = True
    for token in tokens:
        text = token.punctuated
        if text == "i" or text.startswith("i'"):
            text = "I" + text[1:]
        if sentence_start:
            text = text[:1].upper() + text[1:]
        sentence_start = text.endswith((".", "?", "!", "\n"))
        out.append(replace(token, punctuated=text))
    if full_stop and out and not out[-1].punctuated.endswith((".", "?", "!", ",", ":", ";", "\n")):
        out[-1] = replace(out[-1], punctuated=out[-1].punctuated + ".")
    return out
