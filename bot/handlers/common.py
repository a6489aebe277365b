"""What several handlers share: a command's argument, who added something, the admin check."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from telegram import Message, Update, User
from telegram.constants import MessageEntityType

from bot.context import BotContext
from bot.service import REFUSAL, ChatService, Reply
from bot.telegram_io import send_replies

HandlerCallback = Callable[[Update, BotContext], Awaitable[None]]


def command_argument(message: Message) -> str:
    """Everything after the command itself, with its line breaks (so pasted articles keep their shape)."""
    text = message.text or ""
    for entity in message.entities:
        if entity.type == MessageEntityType.BOT_COMMAND and entity.offset == 0:
            return text[entity.length:].strip()
    return text.partition(" ")[2].strip()


def added_by(user: User | None) -> str:
    """How the library records who added an article: the Telegram user's id and @username."""
    if user is None:
        return "telegram"
    return f"telegram:{user.id}" + (f" (@{user.username})" if user.username else "")


async def refuse_unless_admin(update: Update, context: BotContext) -> bool:
    """True (after telling the user) when the sender is not an admin."""
    user = update.effective_user
    if context.service.is_admin(user.id if user else None):
        return False
    await send_replies(context, update.effective_message.chat_id, [REFUSAL])
    return True


def admin_command(run: Callable[[ChatService, int, str], Reply]) -> HandlerCallback:
    """A handler for an admin command answered by one blocking service call (run off the event loop)
    with the user's id and the command's argument."""

    async def handler(update: Update, context: BotContext) -> None:
        message = update.effective_message
        if message is None or await refuse_unless_admin(update, context):
            return
        reply = await asyncio.to_thread(run, context.service, update.effective_user.id, command_argument(message))
        await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)

    return handler
