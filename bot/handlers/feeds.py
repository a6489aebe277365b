"""Feed commands for admins (/subscribe, /unsubscribe, /feeds) and the job that polls feeds."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatAction

from bot.context import BotContext
from bot.handlers.common import added_by, admin_command, command_argument, refuse_unless_admin
from bot.telegram_io import send_replies, show_action

log = logging.getLogger(__name__)


async def on_subscribe(update: Update, context: BotContext) -> None:
    message = update.effective_message
    if message is None or await refuse_unless_admin(update, context):
        return
    await show_action(context, message.chat_id, ChatAction.TYPING)
    user = update.effective_user
    reply = await context.service.subscribe(user.id, command_argument(message), added_by(user))
    await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)


on_unsubscribe = admin_command(lambda service, user_id, argument: service.unsubscribe(user_id, argument))
on_feeds = admin_command(lambda service, user_id, argument: service.feed_list(user_id))


async def poll_feeds_job(context: BotContext) -> None:
    """Runs on the job queue; a failing feed is recorded (see /feeds), never raised."""
    try:
        reports = await context.service.poll_feeds()
    except Exception:
        log.exception("polling feeds failed")
        return
    for report in reports:
        if report.error:
            log.warning("feed #%d failed: %s", report.feed.id, report.error)
        elif report.added:
            log.info("feed #%d: %d new article(s)", report.feed.id, report.added)
