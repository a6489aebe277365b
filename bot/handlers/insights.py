"""/insights for admins: what readers asked over a period (default insights.period_days), how it went, and the
open questions grouped by meaning; ``/insights notify on|off`` chooses whether an admin is told when an add
answers open questions."""

from __future__ import annotations

import asyncio
import math
from html import escape

from telegram import Update
from telegram.constants import ChatAction

from bot import render, texts
from bot.context import BotContext
from bot.handlers.common import command_argument, refuse_unless_admin
from bot.service import ChatService, Reply
from bot.telegram_io import send_replies, show_action
from index.activity.insights import InsightsReport

_EXAMPLE_SHOWN = 200  # characters of a group's example wording


def insights_html(report: InsightsReport) -> str:
    """The report in Telegram HTML (every reader's words escaped), cut to one message."""
    median = f"{report.median_reply_ms / 1000:.1f} s" if report.median_reply_ms is not None else "–"
    lines = [f"<b>Insights for the last {report.days:g} days</b>",
             f"Questions: {report.questions} from {report.askers} reader{'s' if report.askers != 1 else ''}",
             f"Answered {report.share(report.answered):.0%} · refused {report.share(report.refused):.0%}",
             f"Voted 👍 {report.share(report.voted_up):.0%} · voted 👎 {report.share(report.voted_down):.0%}",
             f"Median reply time: {median}"]
    if report.reasons:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(report.reasons.items()))
        lines.append(f"👎 reasons: {escape(reasons)}")
    lines.append(f"\n<b>Open questions: {report.open_questions}</b> (refused or voted 👎)")
    for group in report.groups:
        closest = render.article_line(group.closest) if group.closest is not None else "none"
        lines.append(f"• {group.asked}× <i>{render.shown(group.example, _EXAMPLE_SHOWN)}</i>\n"
                     f"    closest: {closest}")
    return render.truncate_lines(lines)


def insights_reply(service: ChatService, user_id: int, argument: str) -> Reply:
    """/insights [DAYS] or /insights notify on|off (the caller has checked that the user is an admin)."""
    words = argument.lower().split()
    if words[:1] == ["notify"]:
        if words[1:] not in (["on"], ["off"]):
            return Reply(texts.INSIGHTS_USAGE)
        service.activity.set_notices(user_id, words[1] == "on")
        return Reply(texts.NOTICES_ON if words[1] == "on" else texts.NOTICES_OFF)
    if not service.activity.insights_on:
        return Reply(texts.INSIGHTS_OFF)
    days = None
    if words:
        try:
            days = float(words[0]) if len(words) == 1 else math.nan
        except ValueError:
            days = math.nan
        if not 0 < days <= 366:
            return Reply(texts.INSIGHTS_USAGE)
    return Reply(insights_html(service.activity.report(days)))


async def on_insights(update: Update, context: BotContext) -> None:
    message = update.effective_message
    if message is None or await refuse_unless_admin(update, context):
        return
    await show_action(context, message.chat_id, ChatAction.TYPING)
    reply = await asyncio.to_thread(insights_reply, context.service, update.effective_user.id,
                                    command_argument(message))
    await send_replies(context, message.chat_id, [reply], reply_to=message.message_id)
