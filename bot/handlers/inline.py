"""Inline mode: ``@thebot question`` typed in any chat offers passages that answer it, to send there.

Telegram sends a new inline query at nearly every keystroke, and python-telegram-bot handles updates
concurrently here, so each user's newest query cancels the one still running for them: a short pause
before searching lets a query that is typed over end before it searches at all. A search already running
in its thread finishes there, but its results are never sent."""

from __future__ import annotations

import asyncio
import logging

from telegram import InlineQuery, Update

from bot.context import BotContext
from bot.telegram_io import inline_results

log = logging.getLogger(__name__)
# Seconds a query waits before it is searched, so that one typed over is cancelled before it searches.
TYPING_PAUSE_SECONDS = 0.3
# Seconds a search may take: Telegram refuses answers to queries older than a few seconds more than this.
SEARCH_SECONDS = 8.0
# Seconds Telegram may keep an answer to show for the same query again (it is the same for every user).
CACHE_SECONDS = 30
_RUNNING_KEY = "inline queries"  # where each user's running query task is kept in bot_data


async def on_inline_query(update: Update, context: BotContext) -> None:
    """Answer the query, unless a newer one from the same user arrives first (which cancels it)."""
    query = update.inline_query
    if query is None:
        return
    running: dict[int, asyncio.Task[None]] = context.bot_data.setdefault(_RUNNING_KEY, {})
    user_id = query.from_user.id
    previous = running.get(user_id)
    if previous is not None:
        previous.cancel()
    task = asyncio.create_task(answer_inline_query(query, context), name=f"inline query {query.id}")
    running[user_id] = task
    try:
        await asyncio.wait({task})
    finally:
        if running.get(user_id) is task:
            del running[user_id]
        if not task.done():  # this handler itself was cancelled (the bot is stopping)
            task.cancel()
    if task.cancelled():
        log.debug("inline query %s was replaced by a newer one", query.id)
        return
    task.result()  # a failure goes on to the error handler


async def answer_inline_query(query: InlineQuery, context: BotContext) -> None:
    """Search in a worker thread after the typing pause, then answer (with no results when the search is
    refused, finds nothing or takes too long)."""
    await asyncio.sleep(TYPING_PAUSE_SECONDS)
    try:
        answers = await asyncio.wait_for(asyncio.to_thread(context.service.inline_answers, query.query),
                                         SEARCH_SECONDS)
    except asyncio.TimeoutError:
        log.warning("inline query %s took over %s s to search; answered with no results", query.id, SEARCH_SECONDS)
        await query.answer([], cache_time=0, is_personal=False)
        return
    await query.answer(inline_results(answers), cache_time=CACHE_SECONDS if answers else 0, is_personal=False)
