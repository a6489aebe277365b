"""The context every handler, job and error handler receives: PTB's own, plus the chat service.

Registered with ``ContextTypes(context=BotContext)`` in bot/app.py, so a handler declared as
``async def on_x(update: Update, context: BotContext)`` reaches the service as ``context.service``."""

from __future__ import annotations

from typing import Any

from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot

from bot.service import ChatService

_SERVICE_KEY = "service"  # where the service sits in the application's bot_data


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """PTB's callback context with the chat service the application was built with."""

    @property
    def service(self) -> ChatService:
        return self.bot_data[_SERVICE_KEY]


BOT_CONTEXT_TYPES = ContextTypes(context=BotContext)


def attach_service(application: Application, service: ChatService) -> None:
    """Make ``service`` the one every BotContext of this application returns."""
    application.bot_data[_SERVICE_KEY] = service
