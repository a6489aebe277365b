"""Inline buttons, one handler per kind: more passages, sources, and /list pages. Each query is answered
at once (Telegram stops the button's spinner) and its callback data is never trusted.

The callback data is what bot/service.py puts on the buttons: ``more:TOKEN:PAGE``, ``src:TOKEN`` and
``list:OFFSET``. The patterns below match exactly those; anything else (a forged or very old button)
gets the stale-button answer."""

from __future__ import annotations

import asyncio
import re

from telegram import Update

from bot import texts
from bot.context import BotContext
from bot.service import REFUSAL
from bot.telegram_io import edit_reply, send_replies

MORE_PATTERN = re.compile(r"^more:(?P<token>[^:]+):(?P<page>[0-9]{1,9})$")
SOURCES_PATTERN = re.compile(r"^src:(?P<token>[^:]+)$")
LIST_PATTERN = re.compile(r"^list:(?P<offset>[0-9]{1,9})$")


async def _answered_chat(update: Update) -> int | None:
    """Answer the query at once; the chat its button is in (None when Telegram no longer says)."""
    query = update.callback_query
    await query.answer()
    return query.message.chat.id if query.message is not None else None


async def on_more_passages(update: Update, context: BotContext) -> None:
    """The next page of passages for an answer this chat was given."""
    chat_id = await _answered_chat(update)
    if chat_id is None:
        return
    token, page = context.match["token"], int(context.match["page"])
    replies = await asyncio.to_thread(context.service.more, chat_id, token, page)
    await send_replies(context, chat_id, replies)


async def on_sources(update: Update, context: BotContext) -> None:
    """The articles an answer this chat was given quotes."""
    chat_id = await _answered_chat(update)
    if chat_id is None:
        return
    reply = await asyncio.to_thread(context.service.sources, chat_id, context.match["token"])
    await send_replies(context, chat_id, [reply])


async def on_list_page(update: Update, context: BotContext) -> None:
    """Another page of /list, drawn over the old one; admins only (the button can be forged)."""
    query = update.callback_query
    user_id = query.from_user.id
    if not context.service.is_admin(user_id):
        await query.answer(REFUSAL.html, show_alert=True)
        return
    await query.answer()
    if query.message is None:
        return
    reply = await asyncio.to_thread(context.service.list_page, user_id, int(context.match["offset"]))
    await edit_reply(query.message, reply)


async def on_stale_button(update: Update, context: BotContext) -> None:
    """Any other callback data: a button from an older version of the bot, or forged."""
    await update.callback_query.answer(texts.STALE_BUTTON)
