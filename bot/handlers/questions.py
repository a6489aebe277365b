"""Questions: any text in a private chat; in groups only when the bot is mentioned or replied to."""

from __future__ import annotations

import asyncio
import re

from telegram import Message, Update
from telegram.constants import ChatAction, ChatType

from bot.context import BotContext
from bot.service import answer_token
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
    replied_message, replied_token = replied_answer(message, context.bot.id)
    replies = await asyncio.to_thread(context.service.answer, message.chat_id, question,
                                      replied_message=replied_message, replied_token=replied_token,
                                      user_id=message.from_user.id if message.from_user else None)
    sent = await send_replies(context, message.chat_id, replies, reply_to=message.message_id)
    await asyncio.to_thread(context.service.answer_shown, message.chat_id, replies, [m.message_id for m in sent])


def replied_answer(message: Message, bot_id: int) -> tuple[int | None, str | None]:
    """The bot's message this one replies to, and the answer token in that message's buttons (if any)."""
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != bot_id:
        return None, None
    markup = replied.reply_markup
    data = [button.callback_data for row in (markup.inline_keyboard if markup else ()) for button in row
            if isinstance(button.callback_data, str)]
    return replied.message_id, answer_token(data)
