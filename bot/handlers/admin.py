"""Admin commands: /add (URLs or pasted text), uploaded documents, /remove, /list, /stats."""

from __future__ import annotations

import asyncio
from html import escape
from typing import Awaitable, Callable

from telegram import Message, Update, User
from telegram.constants import ChatAction, MessageEntityType
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.service import REFUSAL, ChatService, Reply, add_summary_html, parse_add_arguments
from bot.telegram_io import edit_reply, send_replies, service_of, show_action

HandlerCallback = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]


def command_argument(message: Message) -> str:
    """Everything after the command itself, with its line breaks (so pasted articles keep their shape)."""
    text = message.text or ""
    for entity in message.entities:
        if entity.type == MessageEntityType.BOT_COMMAND and entity.offset == 0:
            return text[entity.length:].strip()
    return text.partition(" ")[2].strip()


def added_by(user: User | None) -> str:
    if user is None:
        return "telegram"
    return f"telegram:{user.id}" + (f" (@{user.username})" if user.username else "")


async def refuse_unless_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """True (after telling the user) when the sender is not an admin."""
    user = update.effective_user
    if service_of(context).is_admin(user.id if user else None):
        return False
    await send_replies(context, update.effective_message.chat_id, [REFUSAL])
    return True


async def on_add(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or await refuse_unless_admin(update, context):
        return
    service, user = service_of(context), update.effective_user
    urls, text = parse_add_arguments(command_argument(message))
    if not urls and text is None:
        await send_replies(context, message.chat_id, [Reply(
            "Usage:\n/add URL [URL …] — add articles from the web\n"
            "/add followed by the article's text on the next lines — the first line is the title\n"
            "or send a .txt, .md, .html or .pdf file.")])
        return
    await show_action(context, message.chat_id, ChatAction.TYPING)
    if text is not None:
        reply = await asyncio.to_thread(service.add_text, user.id, text, added_by(user))
        await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)
        return
    progress = (await send_replies(context, message.chat_id, [Reply(f"Adding {len(urls)} article(s)…")],
                                   reply_to=message.message_id))[0]
    results = []
    async for result in service.add_urls(user.id, urls, added_by(user)):
        results.append(result)
        if len(results) < len(urls):
            await _edit_quietly(progress, Reply(add_summary_html(results, done=False, total=len(urls))))
    await _edit_quietly(progress, Reply(add_summary_html(results, done=True, total=len(urls))))


async def _edit_quietly(message: Message, reply: Reply) -> None:
    try:
        await edit_reply(message, reply)
    except BadRequest as exc:  # "message is not modified" and the like must not fail the add
        if "not modified" not in str(exc).lower():
            raise


async def on_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or message.document is None or await refuse_unless_admin(update, context):
        return
    service, user, document = service_of(context), update.effective_user, message.document
    name = document.file_name or "upload.txt"
    limit = service.settings.library.max_file_bytes
    if document.file_size and document.file_size > limit:
        await send_replies(context, message.chat_id, [Reply(
            f"⚠️ {escape(name)} is too large ({document.file_size:,} bytes; the limit is {limit:,}).")],
            reply_to=message.message_id)
        return
    await show_action(context, message.chat_id, ChatAction.UPLOAD_DOCUMENT)
    telegram_file = await context.bot.get_file(document.file_id)
    data = bytes(await telegram_file.download_as_bytearray())
    reply = await asyncio.to_thread(service.add_document, user.id, data, name, added_by(user))
    await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)


def admin_command(run: Callable[[ChatService, int, str], Reply]) -> HandlerCallback:
    """A handler for an admin command answered by one blocking service call (run off the event loop)
    with the user's id and the command's argument."""

    async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or await refuse_unless_admin(update, context):
            return
        reply = await asyncio.to_thread(run, service_of(context), update.effective_user.id, command_argument(message))
        await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)

    return handler


on_remove = admin_command(lambda service, user_id, argument: service.remove(user_id, argument))
on_list = admin_command(lambda service, user_id, argument: service.list_page(user_id, 0))
on_stats = admin_command(lambda service, user_id, argument: service.stats(user_id))
