"""Telegram Bot API emulator for end-to-end tests of the bot."""

from tests.support.botapi.server import (
    ApiError,
    BotApiServer,
    EntityParseError,
    UploadedFile,
    parse_html,
    utf16_len,
)

__all__ = ["ApiError", "BotApiServer", "EntityParseError", "UploadedFile", "parse_html", "utf16_len"]
