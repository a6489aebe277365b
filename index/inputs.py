"""Numbers typed by people (ids, offsets, counts): ASCII digits only, within what the stores can hold.

``str.isdigit`` and ``int`` accept more than a person means by a number (superscripts such as ``²``,
other scripts' digits, underscores, thousands of digits), and SQLite and PostgreSQL refuse integers
beyond 64 bits with an error of their own. Every command argument that is a number goes through here,
so each bad one gets the same clear message."""

from __future__ import annotations

import argparse
import re
from typing import Callable

MAX_ID = 2**63 - 1  # the largest integer SQLite and PostgreSQL (bigint) store
MAX_OFFSET = MAX_ID
MAX_COUNT = 1_000_000  # passages, articles or questions asked for at once
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


class InvalidNumber(ValueError):
    """A command argument that is not a number in the allowed range (the message says so, for people)."""


def _shown(text: str) -> str:
    """The argument as quoted in a message: cut short when long, so that the message stays readable."""
    return repr(text if len(text) <= 24 else text[:20] + "…")


def parse_number(text: str, what: str = "number", minimum: int = 0, maximum: int = MAX_COUNT) -> int:
    """``text`` as a whole number from ``minimum`` to ``maximum``, written in ASCII digits (spaces around
    it are ignored); anything else raises InvalidNumber naming ``what`` was expected."""
    digits = text.strip()
    allowed = f"a whole number from {minimum} to {maximum}"
    # Longer than the maximum's digits (plus leading zeros people rarely type) is out of range: checked
    # before int(), which would spend time on, or refuse, thousands of digits.
    if not _DIGITS.fullmatch(digits) or len(digits.lstrip("0")) > len(str(maximum)):
        raise InvalidNumber(f"{_shown(text)} is not a valid {what}: {allowed}")
    value = int(digits)
    if not minimum <= value <= maximum:
        raise InvalidNumber(f"{_shown(text)} is not a valid {what}: {allowed}")
    return value


def parse_id(text: str, what: str = "id") -> int:
    """An id as shown by the lists (``12`` or ``#12``): from 1 to MAX_ID."""
    stripped = text.strip()
    return parse_number(stripped[1:] if stripped.startswith("#") else stripped, what, 1, MAX_ID)


def parse_offset(text: str, what: str = "offset") -> int:
    """A position in a list: from 0."""
    return parse_number(text, what, 0, MAX_OFFSET)


def parse_count(text: str, what: str = "count", maximum: int = MAX_COUNT) -> int:
    """How many of something: from 1 to ``maximum``."""
    return parse_number(text, what, 1, maximum)


def id_argument(text: str) -> int:
    """argparse ``type=`` for an id: a bad one ends in argparse's one-line usage error."""
    return _for_argparse(parse_id, text)


def offset_argument(text: str) -> int:
    """argparse ``type=`` for an offset."""
    return _for_argparse(parse_offset, text)


def count_argument(text: str) -> int:
    """argparse ``type=`` for a count."""
    return _for_argparse(parse_count, text)


def _for_argparse(parse: Callable[[str], int], text: str) -> int:
    try:
        return parse(text)
    except InvalidNumber as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
