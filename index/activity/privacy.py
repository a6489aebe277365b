"""Readers are counted without being stored: a user or chat id becomes a keyed hash (HMAC-SHA256 with a
salt made once per library and kept in its store, never logged), so the same reader is the same hash
while nobody can tell from the stored rows who it is."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SALT_BYTES = 32
# Hex characters kept of each hash: 128 bits, far from any collision among a bot's readers.
HASH_CHARS = 32


def new_salt() -> str:
    """A fresh random salt, as hex."""
    return secrets.token_hex(SALT_BYTES)


class ReaderHashes:
    """Keyed hashes of user and chat ids under one library's salt."""

    def __init__(self, salt: str) -> None:
        self._key = bytes.fromhex(salt)

    def __repr__(self) -> str:  # the salt never reaches a log
        return "ReaderHashes(<salt>)"

    def user(self, user_id: int) -> str:
        return self._digest(f"user:{int(user_id)}")

    def chat(self, chat_id: int) -> str:
        return self._digest(f"chat:{int(chat_id)}")

    def _digest(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:HASH_CHARS]
