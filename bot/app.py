"""Builds the python-telegram-bot Application: networking, handlers, commands, polling or webhook."""

from __future__ import annotations

import hashlib
import logging
from functools import partial
from typing import Sequence

from telegram import BotCommand, BotCommandScopeChat, BotCommandScopeDefault, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot import texts
from bot.context import BOT_CONTEXT_TYPES, attach_service
from bot.handlers.admin import on_add, on_document, on_list, on_remove, on_stats
from bot.handlers.alerts import activity_job, on_follow, on_following, on_unfollow
from bot.handlers.buttons import (
    LIST_PATTERN,
    MORE_PATTERN,
    SOURCES_PATTERN,
    on_list_page,
    on_more_passages,
    on_sources,
    on_stale_button,
)
from bot.handlers.conversation import on_new
from bot.handlers.errors import on_error
from bot.handlers.feedback import REASON_PATTERN, VOTE_PATTERN, on_reason, on_vote
from bot.handlers.feeds import on_feeds, on_subscribe, on_unsubscribe, poll_feeds_job
from bot.handlers.info import on_help, on_unknown_command
from bot.handlers.inline import on_inline_query
from bot.handlers.insights import on_insights
from bot.handlers.privacy import on_forget_me
from bot.handlers.questions import on_question
from bot.retries import RetryingRateLimiter
from bot.service import ChatService
from index.config import Settings

log = logging.getLogger(__name__)
PUBLIC_COMMANDS = [BotCommand(command, description) for command, description in texts.PUBLIC_COMMAND_MENU]
ADMIN_COMMANDS = PUBLIC_COMMANDS + [BotCommand(command, description)
                                    for command, description in texts.ADMIN_COMMAND_MENU]


async def register_commands(application: Application, admin_ids: Sequence[int], inline: bool = False) -> None:
    """Command menus: the public list for everyone, the admin list in each admin's private chat; a hint
    when the settings answer inline queries but Telegram sends none (``inline``: bot.inline)."""
    bot = application.bot
    await bot.set_my_commands(PUBLIC_COMMANDS, scope=BotCommandScopeDefault())
    for admin_id in admin_ids:
        try:
            await bot.set_my_commands(ADMIN_COMMANDS, scope=BotCommandScopeChat(admin_id))
        except TelegramError as exc:  # e.g. the admin has not started a chat with the bot yet
            log.warning("could not set the admin command list for %s: %s", admin_id, exc)
    if inline and not bot.supports_inline_queries:
        log.info("inline mode is off for @%s: send /setinline to @BotFather to switch it on", bot.username)
    log.info("bot @%s is ready", bot.username)


def build_application(settings: Settings, token: str, service: ChatService) -> Application:
    base = settings.bot.api_base_url.rstrip("/")
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{base}/bot")
        .base_file_url(f"{base}/file/bot")
        .rate_limiter(RetryingRateLimiter())
        .concurrent_updates(True)
        .context_types(BOT_CONTEXT_TYPES)
        .post_init(partial(register_commands, admin_ids=settings.bot.admin_ids, inline=settings.bot.inline))
        .build()
    )
    attach_service(application, service)
    application.add_handler(CommandHandler(["start", "help"], on_help))
    application.add_handler(CommandHandler("new", on_new))
    application.add_handler(CommandHandler("add", on_add))
    application.add_handler(CommandHandler("remove", on_remove))
    application.add_handler(CommandHandler("list", on_list))
    application.add_handler(CommandHandler("stats", on_stats))
    application.add_handler(CommandHandler("subscribe", on_subscribe))
    application.add_handler(CommandHandler("unsubscribe", on_unsubscribe))
    application.add_handler(CommandHandler("feeds", on_feeds))
    application.add_handler(CommandHandler("insights", on_insights))
    application.add_handler(CommandHandler("follow", on_follow))
    application.add_handler(CommandHandler("following", on_following))
    application.add_handler(CommandHandler("unfollow", on_unfollow))
    application.add_handler(CommandHandler("forgetme", on_forget_me))
    application.add_handler(MessageHandler(filters.COMMAND, on_unknown_command))  # after every CommandHandler
    application.add_handler(MessageHandler(filters.Document.ALL, on_document))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_question))
    application.add_handler(CallbackQueryHandler(on_more_passages, pattern=MORE_PATTERN))
    application.add_handler(CallbackQueryHandler(on_sources, pattern=SOURCES_PATTERN))
    application.add_handler(CallbackQueryHandler(on_list_page, pattern=LIST_PATTERN))
    application.add_handler(CallbackQueryHandler(on_vote, pattern=VOTE_PATTERN))
    application.add_handler(CallbackQueryHandler(on_reason, pattern=REASON_PATTERN))
    application.add_handler(CallbackQueryHandler(on_stale_button))  # any other data: after the others
    if settings.bot.inline:
        application.add_handler(InlineQueryHandler(on_inline_query))
    application.add_error_handler(on_error)
    application.job_queue.run_repeating(poll_feeds_job, interval=settings.feeds.check_seconds, first=5,
                                        name="poll feeds")
    application.job_queue.run_repeating(activity_job, interval=settings.alerts.send_seconds, first=1,
                                        name="alerts and notices")
    return application


def allowed_updates(settings: Settings) -> list[str]:
    """The kinds of update the bot asks Telegram for: messages and button presses, and inline queries
    when bot.inline is on."""
    return [Update.MESSAGE, Update.CALLBACK_QUERY] + ([Update.INLINE_QUERY] if settings.bot.inline else [])


def run(settings: Settings, token: str, service: ChatService) -> None:
    """Serve until interrupted, by long polling or by PTB's webhook server."""
    application = build_application(settings, token, service)
    updates = allowed_updates(settings)
    if settings.bot.mode == "webhook":  # the settings' own checks made sure webhook_url is set
        application.run_webhook(
            listen=settings.bot.webhook_listen, port=settings.bot.webhook_port, url_path="telegram",
            webhook_url=settings.bot.webhook_url.rstrip("/") + "/telegram", allowed_updates=updates,
            secret_token=hashlib.sha256(token.encode()).hexdigest()[:64],
        )
    else:  # "polling", the only other mode the settings allow
        application.run_polling(allowed_updates=updates, timeout=settings.bot.poll_timeout,
                                drop_pending_updates=False)
