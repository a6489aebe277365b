"""/forgetme: delete what the bot stored about the reader (questions, votes, topics) and say how much."""

from __future__ import annotations

import asyncio

from telegram import Update
from telegram.constants import ChatType

from bot import texts
from bot.context import BotContext
from bot.service import ChatService, Reply
from bot.telegram_io import send_replies


def forget_reply(service: ChatService, user_id: int, chat_id: int, private: bool) -> Reply:
    forgotten = service.activity.forget(user_id)
    if private:  # the private chat's recent turns are the reader's too
        service.conversations.forget(chat_id)
    return Reply(texts.forgotten(forgotten.questions, forgotten.votes, forgotten.topics))


async def on_forget_me(update: Update, context: BotContext) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    reply = await asyncio.to_thread(forget_reply, context.service, user.id, message.chat_id,
                                    message.chat.type == ChatType.PRIVATE)
    await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)
