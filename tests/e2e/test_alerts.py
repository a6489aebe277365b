"""End to end: topic alerts through the real bot and the Bot API emulator (a feed entry that matches alerts
once, one that does not alerts nobody, the per-day limit, /following, /unfollow), and on two PostgreSQL
replicas (one alert, whichever replica adds the article and however many send)."""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import pytest

from tests.support import web_pages
from tests.support.bot_runner import RunningBot, running_bot, start_replicas
from tests.support.botapi import BotApiServer

ADMIN = 111
TRAINS_TOPIC = "night trains on the northern line"
BRIDGE = ("Old river bridge reopens to cyclists",
          "The old iron bridge over the river reopened on Saturday after two years of repairs, now closed to cars "
          "and open only to cyclists and people on foot. Engineers replaced the rusted deck plates and painted "
          "the arches green again, and a small ferry that carried cyclists across meanwhile will stop running.")
MUSEUM = ("Museum opens a hall of dinosaur skeletons",
          "The natural history museum opened a new hall on Friday with the skeletons of six dinosaurs found in "
          "the northern quarries, among them a long-necked plant eater nearly twenty metres long. Children may "
          "touch casts of the teeth and claws, and the museum stays open late on Thursdays through the summer.")


@pytest.fixture(scope="module")
def bot(sample_library_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    work = tmp_path_factory.mktemp("alerts")
    shutil.copytree(sample_library_dir, work / "data")
    with running_bot(work, {
        "NEWSBOT_ADMIN_IDS": str(ADMIN), "NEWSBOT_FETCH_ALLOW_HOSTS": "127.0.0.1",
        "NEWSBOT_FEEDS_CHECK_SECONDS": "1", "NEWSBOT_FEEDS_POLL_MINUTES": "0.02",
        "NEWSBOT_ALERTS_SEND_SECONDS": "1", "NEWSBOT_ALERTS_MAX_PER_DAY": "1",
    }) as running:
        yield running


def alerts_in(server: BotApiServer, chat: int) -> list[dict]:
    return [m for m in server.messages(chat) if m["text"].startswith("🔔")]


def test_a_matching_feed_entry_alerts_once_and_another_entry_alerts_nobody(bot: RunningBot, site: str) -> None:
    reader = 901
    [followed] = bot.ask(reader, f"/follow {TRAINS_TOPIC}")
    assert followed["text"].startswith(f"Following “{TRAINS_TOPIC}” (#")
    topic_id = int(followed["text"].split("(#")[1].split(")")[0])
    [listed] = bot.ask(reader, "/following")
    assert f"#{topic_id} · {TRAINS_TOPIC}" in listed["text"]
    bot.server.send_text(-1_000_900, f"/follow@test_news_bot {TRAINS_TOPIC}", user_id=reader, chat_type="supergroup")
    [private_only] = bot.server.wait_for_messages(-1_000_900, timeout=30)
    assert "private chat" in private_only["text"]

    web_pages.FEED_ITEMS[:] = [1, 2]  # trees (no match) and night trains (a match)
    [subscribed] = bot.ask(ADMIN, f"/subscribe {site}/feed.xml", user_id=ADMIN)
    assert "2 added" in subscribed["text"]
    [alert] = bot.server.wait_for_messages(reader, timeout=60)
    title = web_pages.NEWS_STORIES[2][0]
    assert alert["text"].startswith(f"🔔 New on “{TRAINS_TOPIC}” (/unfollow {topic_id} to stop):")
    assert title in alert["text"] and "<b>" in alert["html"]  # the article line and the matching sentence

    web_pages.FEED_ITEMS.append(3)  # telescopes: about nobody's topic

    def telescopes_added() -> bool | None:
        [feeds] = bot.ask(ADMIN, "/feeds", user_id=ADMIN)
        return True if "3 articles added" in feeds["text"] else None

    deadline = time.monotonic() + 60
    while not telescopes_added():
        assert time.monotonic() < deadline, "the feed's new entry was never added"
        time.sleep(1)
    time.sleep(4)  # several runs of the sending job
    assert len(alerts_in(bot.server, reader)) == 1
    assert len(bot.server.messages(reader)) == 3  # /follow's and /following's replies, and the one alert


def test_the_daily_limit_holds_back_a_readers_second_alert(bot: RunningBot) -> None:
    reader = 902
    bot.ask(reader, "/follow the old river bridge reopening")
    bot.ask(reader, "/follow dinosaur skeletons at the museum")
    for title, text in (BRIDGE, MUSEUM):
        [added] = bot.ask(ADMIN, f"/add {title}\n{text}", user_id=ADMIN)
        assert "1 added" in added["text"]
    [alert] = bot.server.wait_for_messages(reader, timeout=30)
    assert BRIDGE[0] in alert["text"]
    time.sleep(4)
    assert len(alerts_in(bot.server, reader)) == 1  # NEWSBOT_ALERTS_MAX_PER_DAY=1


def test_unfollow_removes_only_the_readers_own_topic(bot: RunningBot) -> None:
    [followed] = bot.ask(903, "/follow sanctions on North Korea")
    topic_id = int(followed["text"].split("(#")[1].split(")")[0])
    [not_theirs] = bot.ask(904, f"/unfollow {topic_id}")
    assert not_theirs["text"] == f"You follow no topic #{topic_id}. See /following."
    [usage] = bot.ask(903, "/unfollow")
    assert usage["text"].startswith("Usage: /unfollow ID")
    [bad] = bot.ask(903, "/unfollow ²")
    assert "Usage: /unfollow ID" in bad["text"]
    [gone] = bot.ask(903, f"/unfollow {topic_id}")
    assert gone["text"] == f"Stopped following topic #{topic_id}."
    [empty] = bot.ask(903, "/following")
    assert empty["text"].startswith("You follow no topics")


def test_two_replicas_send_one_alert(sample_postgres_copy_dsn: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        server = stack.enter_context(BotApiServer())
        balancer, replicas = start_replicas(stack, server, tmp_path, sample_postgres_copy_dsn, str(ADMIN))
        reader = 951
        server.send_text(reader, f"/follow {TRAINS_TOPIC}")
        [followed] = server.wait_for_messages(reader, timeout=90)
        assert followed["text"].startswith("Following")
        title, text = web_pages.NEWS_STORIES[2]
        server.send_text(ADMIN, f"/add {title}\n{text}", user_id=ADMIN)
        [added] = server.wait_for_messages(ADMIN, timeout=90)
        assert "1 added" in added["text"]
        [alert] = server.wait_for_messages(reader, timeout=60)  # alerts.send_seconds is 15 by default
        assert title in alert["text"]
        time.sleep(35)  # both replicas' sending jobs run twice more
        assert len(alerts_in(server, reader)) == 1
        assert all(count > 0 for count in balancer.served), balancer.served
