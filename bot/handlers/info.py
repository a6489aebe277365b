"""/start and /help: what the bot knows and how to ask; any other command gets a pointer to /help."""

from __future__ import annotations

import asyncio

from telegram import Message, Update
from telegram.constants import ChatType, MessageEntityType

from bot import texts
from bot.context import BotContext
from bot.service import Reply
from bot.telegram_io import send_replies


async def on_help(update: Update, context: BotContext) -> None:
    message = update.effective_message
    if message is None:
        return
    user_id = update.effective_user.id if update.effective_user else None
    reply = await asyncio.to_thread(context.service.help, user_id)
    await send_replies(context, message.chat_id, [reply])


def unknown_command(message: Message, bot_username: str) -> str | None:
    """The command (``/hlep``) of a message no command handler took, or None when the bot should stay quiet:
    a command addressed to another bot (``/hlep@OtherBot``), or in a group one not addressed to this bot."""
    commands = message.parse_entities([MessageEntityType.BOT_COMMAND])
    first = next((text for entity, text in commands.items() if entity.offset == 0), None)
    if first is None:
        return None
    command, _, addressee = first.partition("@")
    if addressee:
        return command if addressee.casefold() == bot_username.casefold() else None
    return command if message.chat.type == ChatType.PRIVATE else None


async def on_unknown_command(update: Update, context: BotContext) -> None:
    """Registered after every CommandHandler, so it sees only the commands none of them took."""
    message = update.effective_message
    if message is None:
        return
    command = unknown_command(message, context.bot.username)
    if command is not None:
        await send_replies(context, message.chat_id, [Reply(texts.unknown_command(command))],
                           reply_to=message.message_id)
