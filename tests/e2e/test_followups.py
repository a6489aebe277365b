"""End to end: follow-up questions through the real bot and the Bot API emulator, and on two PostgreSQL
replicas (each message of a chat reaches the other replica)."""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.bot_runner import RunningBot, running_bot, start_replicas
from tests.support.botapi import BotApiServer

UN_QUESTION = "what did the UN Security Council say?"
FOLLOW_UP = "and what did China do?"
MARS_QUESTION = "When did the Perseverance rover land on Mars?"
TTL_SECONDS = 9


@pytest.fixture(scope="module")
def bot(sample_library_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    work = tmp_path_factory.mktemp("followups")
    shutil.copytree(sample_library_dir, work / "data")
    with running_bot(work, {"NEWSBOT_CONVERSATION_TTL_MINUTES": str(TTL_SECONDS / 60)}) as running:
        yield running


def read_as_follow_up(reply: dict) -> bool:
    return reply["text"].startswith("About:")


def test_a_short_follow_up_within_the_ttl_is_read_with_the_earlier_answer(bot: RunningBot) -> None:
    bot.ask(601, UN_QUESTION)
    [reply] = bot.ask(601, FOLLOW_UP)
    first_line = reply["text"].splitlines()[0]
    assert first_line.startswith("About: UN Security Council") and "/new" in first_line
    assert "China" in reply["text"] and "<i>About:" in reply["html"]


def test_a_reply_to_an_answer_is_read_with_that_answer_whatever_came_between(bot: RunningBot) -> None:
    [un_answer] = bot.ask(602, UN_QUESTION)
    [mars] = bot.ask(602, MARS_QUESTION)
    assert not read_as_follow_up(mars)
    [reply] = bot.ask(602, FOLLOW_UP, reply_to_message_id=un_answer["message_id"])
    assert reply["text"].startswith("About: UN Security Council") and "China" in reply["text"]


def test_after_new_or_after_the_ttl_the_same_words_are_a_new_question(bot: RunningBot) -> None:
    bot.ask(603, UN_QUESTION)
    [forgotten] = bot.ask(603, "/new")
    assert forgotten["text"].startswith("Starting afresh")
    [reply] = bot.ask(603, FOLLOW_UP)
    assert not read_as_follow_up(reply)

    bot.ask(604, UN_QUESTION)
    time.sleep(TTL_SECONDS + 1)
    [late] = bot.ask(604, FOLLOW_UP)
    assert not read_as_follow_up(late)


def test_an_unrelated_self_contained_question_is_not_rewritten(bot: RunningBot) -> None:
    [alone] = bot.ask(605, MARS_QUESTION)
    bot.ask(606, UN_QUESTION)
    [after] = bot.ask(606, MARS_QUESTION)
    assert not read_as_follow_up(after) and after["html"] == alone["html"]


def test_a_follow_up_is_understood_by_the_other_replica(sample_postgres_copy_dsn: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        server = stack.enter_context(BotApiServer())
        balancer, replicas = start_replicas(stack, server, tmp_path, sample_postgres_copy_dsn, "111")
        served_before = list(balancer.served)
        server.send_text(701, UN_QUESTION)
        [answer] = server.wait_for_messages(701, timeout=90)
        server.send_text(701, FOLLOW_UP)
        [reply] = server.wait_for_messages(701, timeout=90)
        assert reply["text"].startswith("About: UN Security Council") and "China" in reply["text"]
        # the two messages reached different replicas
        assert all(after > before for after, before in zip(balancer.served, served_before)), balancer.served
        server.send_text(701, FOLLOW_UP, reply_to_message_id=answer["message_id"])
        [replied] = server.wait_for_messages(701, timeout=90)
        assert replied["text"].startswith("About: UN Security Council")
