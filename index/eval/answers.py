"""Whether a text holds an answer: the dataset's matching rule, shared by evaluation and training."""

from __future__ import annotations

import re
import unicodedata
from typing import Sequence

_SPACES = re.compile(r"\s+")


def normalize_answer_text(text: str) -> str:
    """NFKC, case-folded, punctuation and symbols to spaces, whitespace collapsed (the dataset's rule)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    spaced = "".join(" " if ch == "_" or unicodedata.category(ch)[0] in "PS" else ch for ch in folded)
    return _SPACES.sub(" ", spaced).strip()


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    """True when one of the answers appears in the text as whole words, after normalising both."""
    haystack = f" {normalize_answer_text(text)} "
    return any(f" {normalize_answer_text(a)} " in haystack for a in answers if normalize_answer_text(a))
