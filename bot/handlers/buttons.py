"""Inline buttons: more passages, sources, and /list pages. Callback data is never trusted."""

from __future__ import annotations

import asyncio

from telegram import Update
from telegram.ext import ContextTypes

from bot.service import REFUSAL
from bot.telegram_io import edit_reply, send_replies, service_of


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None or query.message is None:
        return
    service = service_of(context)
    chat_id = query.message.chat.id
    kind, _, rest = (query.data or "").partition(":")
    if kind == "more":
        token, _, page = rest.partition(":")
        await query.answer()
        replies = await asyncio.to_thread(service.more, chat_id, token, int(page) if page.isdigit() else -1)
        await send_replies(context, chat_id, replies)
    elif kind == "src":
        await query.answer()
        await send_replies(context, chat_id, [await asyncio.to_thread(service.sources, chat_id, rest)])
    elif kind == "list":
        if not service.is_admin(query.from_user.id):
            await query.answer(REFUSAL.html, show_alert=True)
            return
        await query.answer()
        reply = await asyncio.to_thread(service.list_page, query.from_user.id, int(rest) if rest.isdigit() else 0)
        await edit_reply(query.message, reply)
    else:
        await query.answer("This button no longer works.")
