"""The Application the bot builds: which handlers and update kinds bot.inline switches on."""

from __future__ import annotations

import pytest
from telegram import Update
from telegram.ext import InlineQueryHandler

from bot.app import allowed_updates, build_application
from bot.service import ChatService
from index.config import Settings
from index.embedding.embedder import Embedder
from index.library import Library


@pytest.mark.parametrize("inline", [True, False])
def test_bot_inline_switches_the_inline_handler_and_its_updates(sample_copy_settings: Settings, embedder: Embedder,
                                                               inline: bool) -> None:
    settings = sample_copy_settings.replace("bot", inline=inline)
    with Library(settings, embedder=embedder) as library:
        application = build_application(settings, "123456:TEST-TOKEN", ChatService(library, settings))
        handlers = [handler for group in application.handlers.values() for handler in group]
    assert any(isinstance(handler, InlineQueryHandler) for handler in handlers) is inline
    assert (Update.INLINE_QUERY in allowed_updates(settings)) is inline
    assert {Update.MESSAGE, Update.CALLBACK_QUERY} <= set(allowed_updates(settings))
