"""The error handler: log the failure, tell the user something went wrong, reveal nothing internal."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import NetworkError, RetryAfter, TimedOut

from bot.context import BotContext
from bot.texts import APOLOGY

log = logging.getLogger(__name__)


async def on_error(update: object, context: BotContext) -> None:
    error = context.error
    if isinstance(error, (NetworkError, TimedOut, RetryAfter)) and not isinstance(update, Update):
        log.warning("Telegram connection problem: %s", error)  # PTB retries polling by itself
        return
    log.error("error while handling an update", exc_info=error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            if update.callback_query is not None:
                await update.callback_query.answer(APOLOGY, show_alert=True)
            else:
                await context.bot.send_message(update.effective_chat.id, APOLOGY)
        except Exception:  # the apology must not raise another error
            log.warning("could not tell the user about the error", exc_info=True)
