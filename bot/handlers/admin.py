"""Admin commands: /add (URLs or pasted text), uploaded documents, /remove, /list, /stats."""

from __future__ import annotations

import asyncio

from telegram import Message, Update
from telegram.constants import ChatAction
from telegram.error import BadRequest

from bot import texts
from bot.context import BotContext
from bot.handlers.common import added_by, admin_command, command_argument, refuse_unless_admin
from bot.service import Reply, add_summary_html, parse_add_arguments
from bot.telegram_io import edit_reply, send_replies, show_action


async def on_add(update: Update, context: BotContext) -> None:
    message = update.effective_message
    if message is None or await refuse_unless_admin(update, context):
        return
    service, user = context.service, update.effective_user
    urls, text = parse_add_arguments(command_argument(message))
    if not urls and text is None:
        await send_replies(context, message.chat_id, [Reply(texts.ADD_USAGE)])
        return
    await show_action(context, message.chat_id, ChatAction.TYPING)
    if text is not None:
        reply = await asyncio.to_thread(service.add_text, user.id, text, added_by(user))
        await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)
        return
    progress = (await send_replies(context, message.chat_id, [Reply(texts.adding(len(urls)))],
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


async def on_document(update: Update, context: BotContext) -> None:
    message = update.effective_message
    if message is None or message.document is None or await refuse_unless_admin(update, context):
        return
    service, user, document = context.service, update.effective_user, message.document
    name = document.file_name or "upload.txt"
    limit = service.settings.library.max_file_bytes
    if document.file_size and document.file_size > limit:
        await send_replies(context, message.chat_id, [Reply(texts.file_too_large(name, document.file_size, limit))],
                           reply_to=message.message_id)
        return
    await show_action(context, message.chat_id, ChatAction.UPLOAD_DOCUMENT)
    telegram_file = await context.bot.get_file(document.file_id)
    data = bytes(await telegram_file.download_as_bytearray())
    reply = await asyncio.to_thread(service.add_document, user.id, data, name, added_by(user))
    await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)


on_remove = admin_command(lambda service, user_id, argument: service.remove(user_id, argument))
on_list = admin_command(lambda service, user_id, argument: service.list_page(user_id, 0))
on_stats = admin_command(lambda service, user_id, argument: service.stats(user_id))
