"""Questions: any text in a private chat; in groups only when the bot is mentioned or replied to."""

from __future__ import annotations

import asyncio
import re

from telegram import Message, Update
from telegram.constants import ChatAction, ChatType

from bot.context import BotContext
from bot.telegram_io import send_replies, show_action


def question_text(message: Message, bot_id: int, bot_username: str) -> str | None:
    """The question in a message, or None when the message is not addressed to the bot."""
    text = message.text or ""
    if message.chat.type == ChatType.PRIVATE:
        return text
    mention = f"@{bot_username}"
    replied_to_bot = bool(message.reply_to_message and message.reply_to_message.from_user
                          and message.reply_to_message.from_user.id == bot_id)
    if mention.casefold() not in text.casefold() and not replied_to_bot:
        return None
    return re.sub(re.escape(mention), " ", text, flags=re.IGNORECASE).strip()


async def on_question(update: Update, context: BotContext) -> None:
    message = update.effective_message
    if message is None or message.text is None:
        return
    question = question_text(message, context.bot.id, context.bot.username)
    if question is None:
        return
    await show_action(context, message.chat_id, ChatAction.TYPING)
    replies = await asyncio.to_thread(context.service.answer, message.chat_id, question)
    await send_replies(context, message.chat_id, replies, reply_to=message.message_id)
