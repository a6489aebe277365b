"""/start and /help: what the bot knows and how to ask."""

from __future__ import annotations

import asyncio

from telegram import Update
from telegram.ext import ContextTypes

from bot.telegram_io import send_replies, service_of


async def on_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None:
        return
    user_id = update.effective_user.id if update.effective_user else None
    reply = await asyncio.to_thread(service_of(context).help, user_id)
    await send_replies(context, message.chat_id, [reply])
