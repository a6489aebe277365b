"""👍/👎 on answers, and the optional reason after a 👎.

A vote is ``vote:TOKEN:u`` or ``vote:TOKEN:d`` (the answer's token, as on its other buttons): one vote per
reader per answer, changeable. Only the presser is answered (answerCallbackQuery); the answer's message
stays as it is for everyone in the chat. After a 👎 the reader alone is asked what was wrong, in their
private chat with the bot (``why:QUESTION:CODE``); a reader who never opened one is not asked."""

from __future__ import annotations

import asyncio
import logging
import re

from telegram import Update
from telegram.error import TelegramError

from bot import texts
from bot.context import BotContext
from bot.service import Button, Reply
from bot.telegram_io import edit_reply, send_replies
from index.activity.insights import REASONS

log = logging.getLogger(__name__)
VOTE_PATTERN = re.compile(r"^vote:(?P<token>[^:]+):(?P<choice>[ud])$")
REASON_PATTERN = re.compile(r"^why:(?P<question>[0-9]{1,18}):(?P<code>[a-z])$")


def reason_prompt(question_id: int) -> Reply:
    """The one-tap question after a 👎: one button per reason, each on its own row (their words are long)."""
    return Reply(texts.REASON_QUESTION, tuple((Button(words, f"why:{question_id}:{code}"),)
                                              for code, words in REASONS.items()))


async def on_vote(update: Update, context: BotContext) -> None:
    query = update.callback_query
    if query.message is None:
        await query.answer(texts.VOTE_UNKNOWN)
        return
    up = context.match["choice"] == "u"
    outcome = await asyncio.to_thread(context.service.activity.vote, query.message.chat.id, context.match["token"],
                                      query.from_user.id, up)
    await query.answer(texts.vote_confirmation(outcome.status, up))
    if outcome.question_id is not None and not up and outcome.status != "same":
        try:
            await send_replies(context, query.from_user.id, [reason_prompt(outcome.question_id)])
        except TelegramError as exc:  # e.g. the reader never opened a private chat with the bot
            log.info("could not ask a voter for the reason: %s", exc)


async def on_reason(update: Update, context: BotContext) -> None:
    query = update.callback_query
    code = context.match["code"]
    noted = await asyncio.to_thread(context.service.activity.give_reason, int(context.match["question"]),
                                    query.from_user.id, code)
    await query.answer(texts.REASON_THANKS if noted else texts.VOTE_UNKNOWN)
    if noted and query.message is not None:
        await edit_reply(query.message, Reply(texts.reason_noted(REASONS[code])))
