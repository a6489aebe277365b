"""Topic alerts: /follow TOPIC, /following, /unfollow ID for any reader (in a private chat, where alerts
arrive), and the job that sends what waits in the activity store (alerts, admins' notices, the weekly
digest) and deletes expired activity."""

from __future__ import annotations

import asyncio
import logging
import re
from html import escape

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError

from bot import render, texts
from bot.context import BotContext
from bot.handlers.common import command_argument
from bot.handlers.insights import insights_html
from bot.service import ChatService, Reply, single_id
from bot.telegram_io import send_replies
from index.activity.reader_activity import ALERT, NOTICE
from index.activity.records import Outgoing
from index.inputs import InvalidNumber
from index.library import Library
from index.search.hybrid import Hit

log = logging.getLogger(__name__)
# Waiting messages one run of the job takes.
SEND_BATCH = 20
_HAS_WORD = re.compile(r"\w", re.UNICODE)


def follow_reply(service: ChatService, user_id: int, chat_id: int, argument: str) -> Reply:
    topic = " ".join(argument.split())
    if not service.activity.alerts_on:
        return Reply(texts.ALERTS_OFF)
    if not _HAS_WORD.search(topic):
        return Reply(texts.FOLLOW_USAGE)
    if len(topic) > texts.TOPIC_MAX_CHARS:
        return Reply(texts.topic_too_long(texts.TOPIC_MAX_CHARS))
    topic_id = service.activity.follow(user_id, chat_id, topic)
    if topic_id is None:
        return Reply(texts.too_many_topics(service.settings.alerts.max_topics))
    return Reply(texts.following(topic, topic_id))


def following_reply(service: ChatService, user_id: int) -> Reply:
    topics = service.activity.following(user_id)
    return Reply(texts.topics_list([(t.id, t.topic) for t in topics]) if topics else texts.NOT_FOLLOWING)


def unfollow_reply(service: ChatService, user_id: int, argument: str) -> Reply:
    try:
        topic_id = single_id(argument, "topic number")
    except InvalidNumber as exc:
        return Reply(f"{escape(str(exc))}.\n{texts.UNFOLLOW_USAGE}")
    if topic_id is None:
        return Reply(texts.UNFOLLOW_USAGE)
    removed = service.activity.unfollow(user_id, topic_id)
    return Reply(texts.unfollowed(topic_id) if removed else texts.no_such_topic(topic_id))


async def _private_only(update: Update, context: BotContext) -> bool:
    """True (after saying where to go) when the command was sent outside a private chat."""
    message = update.effective_message
    if message.chat.type == ChatType.PRIVATE:
        return False
    await send_replies(context, message.chat_id, [Reply(texts.FOLLOW_PRIVATE_ONLY)], reply_to=message.message_id)
    return True


async def on_follow(update: Update, context: BotContext) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or await _private_only(update, context):
        return
    reply = await asyncio.to_thread(follow_reply, context.service, user.id, message.chat_id, command_argument(message))
    await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)


async def on_following(update: Update, context: BotContext) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or await _private_only(update, context):
        return
    reply = await asyncio.to_thread(following_reply, context.service, user.id)
    await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)


async def on_unfollow(update: Update, context: BotContext) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or await _private_only(update, context):
        return
    reply = await asyncio.to_thread(unfollow_reply, context.service, user.id, command_argument(message))
    await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)


# -- sending what waits -------------------------------------------------------------------------------------
def outgoing_reply(library: Library, outgoing: Outgoing) -> Reply | None:
    """The message for a waiting alert or notice; None when its article (or passage) was removed since."""
    payload = outgoing.payload
    article = library.get_article(int(payload["article_id"]))
    if article is None:
        return None
    if payload.get("kind") == NOTICE:
        return Reply(texts.questions_answered_by(int(payload["count"]), render.article_line(article)))
    if payload.get("kind") != ALERT:
        return None
    passage = library.store.get_passages([int(payload["passage_id"])]).get(int(payload["passage_id"]))
    if passage is None or passage.article_id != article.id:
        return None
    sentence = payload.get("sentence")
    marked = (int(sentence[0]), int(sentence[1])) if sentence else None
    hit = Hit(passage.id, article, passage.text, passage.start, passage.end, score=0.0, dense_score=0.0,
              dense_rank=None, lexical_rank=None, best_sentence=marked)
    heading = texts.alert_heading(str(payload["topic"]), int(payload["topic_id"]))
    room = render.MAX_MESSAGE_CHARS - 64 - render.message_length(heading)
    return Reply(f"{heading}\n{render.passage_html(hit, max_chars=room)}")


async def send_outgoing(context: BotContext) -> int:
    """Take the waiting alerts and notices (each is taken by one process only) and send them; returns how many
    were sent."""
    service = context.service
    sent = 0
    for outgoing in await asyncio.to_thread(service.activity.take_outgoing, SEND_BATCH):
        reply = await asyncio.to_thread(outgoing_reply, service.library, outgoing)
        if reply is None:
            continue
        try:
            await send_replies(context, outgoing.chat_id, [reply])
            sent += 1
        except TelegramError as exc:  # e.g. the reader blocked the bot: the message is dropped
            log.warning("could not send a %s: %s", outgoing.payload.get("kind"), exc)
    return sent


async def send_digest(context: BotContext) -> None:
    """The weekly insights to every admin, by the one process that claims this week's digest."""
    service = context.service
    if not await asyncio.to_thread(service.activity.digest_due):
        return
    report = await asyncio.to_thread(service.activity.report, 7.0)
    for admin_id in service.settings.bot.admin_ids:
        try:
            await send_replies(context, admin_id, [Reply(insights_html(report))])
        except TelegramError as exc:
            log.warning("could not send the weekly digest to an admin: %s", exc)


async def activity_job(context: BotContext) -> None:
    """Runs on the job queue every alerts.send_seconds; a failure is logged, never raised."""
    try:
        await asyncio.to_thread(context.service.activity.prune)
        await send_outgoing(context)
        await send_digest(context)
    except Exception:
        log.exception("sending alerts and notices failed")
