"""End to end through the real bot and the Bot API emulator: 👍/👎 votes (private and group chats), the
👎 reason, /insights with an open question closed by an /add (and the admin's notice), /forgetme, and
retention of the stored questions."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from index.activity.sql import SharedActivitySql
from index.stores.embedded.activity import SqliteActivity
from tests.support.bot_runner import RunningBot, running_bot
from tests.support.web_pages import NEWS_STORIES

ADMIN = 111
UN_QUESTION = "what did the UN Security Council say?"
TREES_QUESTION = "How many street trees will the city council plant?"
OLD_QUESTION = "What happened to the harbour cranes long ago?"


@pytest.fixture(scope="module")
def bot(sample_library_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    work = tmp_path_factory.mktemp("feedback")
    shutil.copytree(sample_library_dir, work / "data")
    old = SqliteActivity(work / "data")  # a question asked before the retention period: the bot deletes it
    old.record_question(asker="someone", chat="somewhere", token=None, question=OLD_QUESTION, answered=False,
                        passage_ids=[], reply_ms=10, at=datetime.now(timezone.utc) - timedelta(days=31))
    old.close()
    with running_bot(work, {"NEWSBOT_ADMIN_IDS": str(ADMIN), "NEWSBOT_ALERTS_SEND_SECONDS": "1"}) as running:
        yield running


def buttons(message: dict) -> dict[str, str]:
    markup = message.get("reply_markup") or {}
    return {button["text"]: button["callback_data"] for row in markup.get("inline_keyboard", []) for button in row}


def answered(bot: RunningBot, query_id: str) -> dict:
    """The answerCallbackQuery the bot made for one button press."""
    return bot.server.wait_until(
        lambda: next((a for a in bot.server.answered_callbacks if a["callback_query_id"] == query_id), None),
        timeout=30, describe=lambda: f"an answer to callback query {query_id}")


def stored(bot: RunningBot) -> SharedActivitySql:
    return SqliteActivity(bot.data_dir)


def test_a_vote_a_changed_vote_and_the_reason_are_seen_only_by_the_reader(bot: RunningBot) -> None:
    chat = 801
    [reply] = bot.ask(chat, UN_QUESTION)
    votes = buttons(reply)
    assert list(votes) == ["More passages", "Sources", "👍", "👎"]
    assert all(len(data.encode()) <= 64 for data in votes.values())

    up = bot.server.press_button(chat, reply["message_id"], votes["👍"])
    assert answered(bot, up)["text"] == "Thanks for the 👍"
    again = bot.server.press_button(chat, reply["message_id"], votes["👍"])
    assert answered(bot, again)["text"] == "You already voted 👍"
    down = bot.server.press_button(chat, reply["message_id"], votes["👎"])
    assert answered(bot, down)["text"] == "Changed to 👎"
    [prompt] = bot.server.wait_for_messages(chat, timeout=30)
    assert prompt["text"].startswith("What was wrong")
    reasons = buttons(prompt)
    assert list(reasons) == ["not what I asked", "wrong or outdated", "something missing"]
    why = bot.server.press_button(chat, prompt["message_id"], reasons["wrong or outdated"])
    assert answered(bot, why)["text"] == "Thanks, noted."
    noted = bot.server.wait_for_edit(chat, prompt["message_id"], timeout=30)
    assert noted["text"] == "Thanks: noted “wrong or outdated”."
    # the answer itself never changed
    [shown] = [m for m in bot.server.messages(chat) if m["message_id"] == reply["message_id"]]
    assert shown["text"] == reply["text"] and buttons(shown) == votes

    store = stored(bot)
    [question] = [q for q in store.questions_since(datetime.now(timezone.utc) - timedelta(hours=1))
                  if q.question == UN_QUESTION and q.down_votes]
    assert (question.up_votes, question.down_votes, question.answered) == (0, 1, True)
    assert str(chat) not in question.asker  # stored as a hash only
    store.close()


def test_in_a_group_another_readers_vote_counts_apart_and_the_chat_sees_nothing(bot: RunningBot) -> None:
    group, asker, other = -1_000_800, 8_001, 8_002
    bot.server.send_text(group, f"@test_news_bot {UN_QUESTION}", user_id=asker, chat_type="supergroup")
    [reply] = bot.server.wait_for_messages(group, timeout=60)
    votes = buttons(reply)
    first = bot.server.press_button(group, reply["message_id"], votes["👍"], user_id=asker)
    assert answered(bot, first)["text"] == "Thanks for the 👍"
    second = bot.server.press_button(group, reply["message_id"], votes["👎"], user_id=other)
    assert answered(bot, second)["text"] == "Thanks for the 👎: it helps the admins fill the gaps."
    # the 👎 reason is asked in the voter's private chat, never in the group
    [prompt] = bot.server.wait_for_messages(other, timeout=30)
    assert prompt["text"].startswith("What was wrong")
    time.sleep(2)
    assert [m["message_id"] for m in bot.server.messages(group)] == [reply["message_id"]]
    assert all(str(call.get("chat_id")) != str(group) for call in bot.server.calls_of("editMessageText"))
    store = stored(bot)
    [question] = [q for q in store.questions_since(datetime.now(timezone.utc) - timedelta(hours=1))
                  if q.up_votes and q.question == UN_QUESTION]
    assert (question.up_votes, question.down_votes) == (1, 1)
    store.close()


def open_count(insights_text: str) -> int:
    line = next(line for line in insights_text.splitlines() if line.startswith("Open questions: "))
    return int(line.split()[2])


def test_insights_list_a_refused_question_until_an_add_answers_it(bot: RunningBot) -> None:
    [refusal] = bot.ask(802, "/insights")
    assert "only the bot's admins" in refusal["text"]
    [refused] = bot.ask(802, TREES_QUESTION)
    assert "could not find" in refused["text"]
    [notify] = bot.ask(ADMIN, "/insights notify on", user_id=ADMIN)
    assert "I will tell you" in notify["text"]
    [insights] = bot.ask(ADMIN, "/insights", user_id=ADMIN)
    assert "Insights for the last 7 days" in insights["text"] and "Median reply time" in insights["text"]
    assert f"1× {TREES_QUESTION}" in insights["text"]
    open_before = open_count(insights["text"])

    title, text = NEWS_STORIES[1]
    bot.server.send_text(ADMIN, f"/add {title}\n{text}", user_id=ADMIN)
    replies = bot.server.wait_for_messages(ADMIN, count=2, timeout=60)
    assert any("1 added" in reply["text"] for reply in replies)
    [notice] = [reply for reply in replies if "open question" in reply["text"]]
    assert notice["text"].startswith(f"1 open question is now answered by {title}")
    [after] = bot.ask(ADMIN, "/insights", user_id=ADMIN)
    assert open_count(after["text"]) == open_before - 1 and TREES_QUESTION not in after["text"]
    [usage] = bot.ask(ADMIN, "/insights yesterday", user_id=ADMIN)
    assert usage["text"].startswith("Usage: /insights")


def test_forgetme_deletes_the_readers_questions_votes_and_topics(bot: RunningBot) -> None:
    chat = 803
    [reply] = bot.ask(chat, UN_QUESTION)
    answered(bot, bot.server.press_button(chat, reply["message_id"], buttons(reply)["👍"]))
    bot.ask(chat, "/follow sanctions on North Korea")
    [forgotten] = bot.ask(chat, "/forgetme")
    assert forgotten["text"] == ("Deleted what I stored about you: 1 question, 1 vote and 1 topic.")
    [again] = bot.ask(chat, "/forgetme")
    assert "0 questions, 0 votes and 0 topics" in again["text"]
    [topics] = bot.ask(chat, "/following")
    assert topics["text"].startswith("You follow no topics")


def test_questions_older_than_the_retention_are_deleted(bot: RunningBot) -> None:
    deadline = time.monotonic() + 30
    while True:
        store = stored(bot)
        try:
            asked = [q.question for q in store.questions_since(datetime.now(timezone.utc) - timedelta(days=400))]
        finally:
            store.close()
        if OLD_QUESTION not in asked:
            break
        assert time.monotonic() < deadline, "the expired question was never deleted"
        time.sleep(0.5)
    assert asked  # the recent ones stay
