"""Sending service replies to Telegram: HTML, inline buttons, no link previews; inline query results."""

from __future__ import annotations

import logging
from typing import Sequence

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    LinkPreviewOptions,
    Message,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import TelegramError

from bot.context import BotContext
from bot.service import InlineAnswer, Reply

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
log = logging.getLogger(__name__)


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=b.data) for b in row]
                                 for row in reply.buttons])


async def show_action(context: BotContext, chat_id: int, action: ChatAction) -> None:
    """Show "typing…" (or another action); a failure is logged, never in the way of the answer."""
    try:
        await context.bot.send_chat_action(chat_id, action)
    except TelegramError as exc:
        log.info("could not show %s in %s: %s", action.value, chat_id, exc)


async def send_replies(context: BotContext, chat_id: int, replies: Sequence[Reply],
                       reply_to: int | None = None) -> list[Message]:
    """Send each reply as one message; only the first quotes the user's message."""
    sent = []
    for number, reply in enumerate(replies):
        sent.append(await context.bot.send_message(
            chat_id, reply.html, parse_mode=ParseMode.HTML, reply_markup=keyboard(reply),
            link_preview_options=NO_PREVIEW,
            reply_to_message_id=reply_to if number == 0 else None,
            allow_sending_without_reply=True,
        ))
    return sent


async def edit_reply(message: Message, reply: Reply) -> None:
    await message.edit_text(reply.html, parse_mode=ParseMode.HTML, reply_markup=keyboard(reply),
                            link_preview_options=NO_PREVIEW)


def inline_results(answers: Sequence[InlineAnswer]) -> list[InlineQueryResultArticle]:
    """Inline query results: each an article result whose message is the passage, in HTML."""
    return [InlineQueryResultArticle(
        id=answer.result_id, title=answer.title, description=answer.description,
        input_message_content=InputTextMessageContent(answer.html, parse_mode=ParseMode.HTML,
                                                      link_preview_options=NO_PREVIEW),
    ) for answer in answers]
