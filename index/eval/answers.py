"""Whether a text holds an answer: the dataset's matching rule, shared by evaluation and training."""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache
from typing import Sequence

_SPACES = re.compile(r"\s+")


@cache
def _to_spaces() -> dict[int, str]:
    """A str.translate table sending "_" and every punctuation or symbol character to a space (built
    once: about 8,000 of Unicode's code points; one C-level pass then replaces a per-character test)."""
    table = {ord("_"): " "}
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code))[0] in "PS":
            table[code] = " "
    return table


def normalize_answer_text(text: str) -> str:
    """NFKC, case-folded, punctuation and symbols to spaces, whitespace collapsed (the dataset's rule)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", folded.translate(_to_spaces())).strip()


def haystack(text: str) -> str:
    """The text as ``holds_answer`` searches it (normalised once, for a text checked many times)."""
    return f" {normalize_answer_text(text)} "


def holds_answer(searched: str, answers: Sequence[str]) -> bool:
    """True when one of the answers appears in the ``haystack`` of a text as whole words."""
    return any(f" {normalize_answer_text(a)} " in searched for a in answers if normalize_answer_text(a))


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    """True when one of the answers appears in the text as whole words, after normalising both."""
    return holds_answer(haystack(text), answers)
