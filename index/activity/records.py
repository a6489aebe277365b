"""The rows of reader activity that the stores hand back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# A 👍 and a 👎 as stored.
UP, DOWN = 1, -1


@dataclass(frozen=True)
class AskedQuestion:
    """A stored question: whether it was answered, how fast, and its votes."""

    id: int
    question: str
    asker: str  # the salted hash of the asker's user id
    answered: bool
    reply_ms: int
    asked_at: datetime
    up_votes: int = 0
    down_votes: int = 0
    closed_by: int | None = None  # the article that answered it after it was refused or voted 👎

    @property
    def open(self) -> bool:
        """Refused or voted 👎, and not answered by a later add."""
        return self.closed_by is None and (not self.answered or self.down_votes > 0)


@dataclass(frozen=True)
class Topic:
    """A standing query of one reader (/follow)."""

    id: int
    user_id: int
    chat_id: int  # the reader's private chat, where alerts go
    topic: str
    created_at: datetime


@dataclass(frozen=True)
class Outgoing:
    """A message waiting to be sent by whichever bot process takes it first: an alert or an admin notice.
    ``payload`` says what it is (its ``kind``) and what the bot needs to write it."""

    id: int
    chat_id: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class Forgotten:
    """What /forgetme deleted."""

    questions: int
    votes: int
    topics: int
