"""Buffered Speak text cut into sentences, so audio starts before the whole buffer is spoken.

A sentence is complete once its closing punctuation is followed by whitespace (or a line ends): an
LLM's tokens arrive as "Hello", " there.", " How" and the full stop alone is not enough, since "Dr."
or "3.5" may go on. Flush takes whatever is left, complete or not. A run of text with no sentence end
is cut at a space once it reaches ``MAX_SENTENCE_CHARACTERS``, so one sentence's audio stays bounded.
"""

from __future__ import annotations

import re

#: About 25 s of speech: bounds the audio one sentence holds in memory and the wait for a barge-in.
MAX_SENTENCE_CHARACTERS = 400
SENTENCE_END = re.compile(r"[.!?…;:]+[\"')\]]*\s+|\n\s*")


class SentenceBuffer:
    """Text not yet spoken."""

    def __init__(self) -> None:
        self._text = ""

    def __len__(self) -> int:
        return len(self._text)

    def append(self, text: str) -> None:
        self._text += text

    def complete_sentences(self) -> list[str]:
        """Take every complete sentence (and over-long run) off the front of the buffer."""
        sentences: list[str] = []
        while True:
            match = SENTENCE_END.search(self._text)
            end = match.end() if match else None
            if end is None or end > MAX_SENTENCE_CHARACTERS:
                if len(self._text) < MAX_SENTENCE_CHARACTERS:
                    break
                end = _cut(self._text)
            sentence, self._text = self._text[:end], self._text[end:]
            if sentence.strip():
                sentences.append(sentence.strip())
        return sentences

    def rest(self) -> list[str]:
        """Take everything (what Flush and Close speak): complete sentences, then the unfinished one."""
        sentences = self.complete_sentences()
        if self._text.strip():
            sentences.append(self._text.strip())
        self._text = ""
        return sentences

    def clear(self) -> None:
        self._text = ""


def _cut(text: str) -> int:
    """Where to cut an over-long run: after the last space within the limit, else at the limit."""
    space = text.rfind(" ", 0, MAX_SENTENCE_CHARACTERS)
    return space + 1 if space > 0 else MAX_SENTENCE_CHARACTERS
