"""/new: forget the chat's conversation, so that the next question is not read as a follow-up."""

from __future__ import annotations

import asyncio

from telegram import Update

from bot.context import BotContext
from bot.telegram_io import send_replies


async def on_new(update: Update, context: BotContext) -> None:
    message = update.effective_message
    if message is None:
        return
    reply = await asyncio.to_thread(context.service.new_conversation, message.chat_id)
    await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)
