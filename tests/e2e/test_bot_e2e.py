"""End to end: the real bot (`python -m bot`, PTB's real networking) against the Bot API emulator on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from bot import render
from tests.support import web_pages
from tests.support.bot_runner import PROJECT, SAMPLE_QUESTIONS, RunningBot, running_bot, stop_bot
from tests.support.botapi import BotApiServer

ADMIN = 111
UN_QUESTION = "what did the UN Security Council say?"


@pytest.fixture(scope="module")
def bot(sample_library_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    work = tmp_path_factory.mktemp("bot")
    shutil.copytree(sample_library_dir, work / "data")
    with running_bot(work, {
        "NEWSBOT_ADMIN_IDS": str(ADMIN),
        "NEWSBOT_BOT_LIST_PAGE_SIZE": "3",
        "NEWSBOT_FETCH_ALLOW_HOSTS": "127.0.0.1",
        "NEWSBOT_FEEDS_CHECK_SECONDS": "1",
        "NEWSBOT_FEEDS_POLL_MINUTES": "0.02",
    }) as running:
        yield running


def _buttons(message: dict) -> list[dict]:
    markup = message.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def test_question_gets_cited_passages_with_bold_sentence_and_buttons(bot: RunningBot) -> None:
    chat = 501
    [reply] = bot.ask(chat, UN_QUESTION)
    assert "Security Council" in reply["text"] and "condemned" in reply["text"]
    assert "<b>" in reply["html"] and '<a href="https://example.org/news/2017/04/' in reply["html"]
    assert "typing" in bot.server.chat_actions(chat)
    labels = [b["text"] for b in _buttons(reply)]
    assert labels == ["More passages", "Sources", "👍", "👎"]

    more = _buttons(reply)[0]["callback_data"]
    bot.server.press_button(chat, reply["message_id"], more)
    [page_two] = bot.server.wait_for_messages(chat, timeout=60)
    assert "4." in page_two["text"]
    bot.server.press_button(chat, reply["message_id"], _buttons(reply)[1]["callback_data"])
    [sources] = bot.server.wait_for_messages(chat, timeout=60)
    assert sources["text"].startswith("Sources") and "UN Security Council" in sources["text"]


def test_unrelated_question_is_declined_with_the_closest_article(bot: RunningBot) -> None:
    [reply] = bot.ask(502, "Which team won the 1994 curling championship in Manitoba?")
    assert "could not find" in reply["text"] and "closest article" in reply["text"]


def test_forged_button_data_reveals_nothing(bot: RunningBot) -> None:
    chat, other = 503, 504
    [reply] = bot.ask(chat, UN_QUESTION)
    more = _buttons(reply)[0]["callback_data"]
    # the same callback data pressed in another chat finds nothing
    [own] = bot.ask(other, "hello there, what do you know about Mars?")
    bot.server.press_button(other, own["message_id"], more, check_keyboard=False)
    [answer] = bot.server.wait_for_messages(other, timeout=60)
    assert "no longer available" in answer["text"]
    # a non-admin pressing a forged /list page button is refused
    bot.server.press_button(other, own["message_id"], "list:0", check_keyboard=False)
    bot.server.wait_until(lambda: any("only the bot's admins" in (c.get("text") or "")
                                      for c in bot.server.answered_callbacks) or None, timeout=30,
                          describe=lambda: str(bot.server.answered_callbacks))


def test_non_admin_cannot_add_and_nothing_is_added(bot: RunningBot) -> None:
    chat = 505
    [before] = bot.ask(chat, "/help")
    text = "/add Secret plans\n" + "The committee approved the secret plan on Monday morning. " * 10
    [refusal] = bot.ask(chat, text)
    assert "only the bot's admins" in refusal["text"]
    bot.server.send_document(chat, "plans.txt", b"Plans\n" + b"Some words about plans. " * 40, "text/plain")
    [refusal] = bot.server.wait_for_messages(chat, timeout=60)
    assert "only the bot's admins" in refusal["text"]
    [after] = bot.ask(chat, "/help")
    assert before["text"] == after["text"]  # same article count
    assert "/add" not in after["text"]


def test_admin_uploads_a_document_then_asks_about_it(bot: RunningBot) -> None:
    content = ("Lighthouse keepers return to Skerry Point\n\n"
               "The coastal authority said on Friday that two keepers will live at the Skerry Point lighthouse "
               "again from June, twenty years after the light was automated. The keepers will run a small "
               "visitor centre and record weather observations for the national forecast service. "
               "The authority expects about eleven thousand visitors in the first summer.").encode()
    bot.server.send_document(ADMIN, "lighthouse.txt", content, "text/plain", user_id=ADMIN)
    [added] = bot.server.wait_for_messages(ADMIN, timeout=120)
    assert "Added" in added["text"] and "Lighthouse keepers" in added["text"]
    [reply] = bot.ask(ADMIN, "How many visitors does the Skerry Point lighthouse expect?")
    assert "Lighthouse keepers return to Skerry Point" in reply["text"]
    assert "eleven thousand visitors" in reply["text"]


def test_admin_adds_text_full_of_html_special_characters_and_it_renders(bot: RunningBot) -> None:
    body = ("Tariff <b>talks</b> & the R&D budget: 3 < 4 > 2, \"quotes\" and <script>x</script> stay text. "
            "Negotiators for AT&T & Co met at the <Harbour> hotel to discuss tariffs on chips. ") * 12
    [added] = bot.ask(ADMIN, "/add Tariffs & <chips> talks\n" + body, user_id=ADMIN)
    assert "Added" in added["text"] and "Tariffs & <chips> talks" in added["text"]
    [reply] = bot.ask(ADMIN, "What did negotiators for AT&T discuss at the Harbour hotel?")
    assert "Tariffs & <chips> talks" in reply["text"] and "<script>x</script>" in reply["text"]
    assert "&lt;script&gt;" in reply["html"]


def test_admin_list_pages_with_buttons_and_remove(bot: RunningBot) -> None:
    [listing] = bot.ask(ADMIN, "/list", user_id=ADMIN)
    assert listing["text"].startswith("Articles 1–3 of")
    older = [b for b in _buttons(listing) if b["text"].startswith("Older")]
    assert older
    bot.server.press_button(ADMIN, listing["message_id"], older[0]["callback_data"], user_id=ADMIN)
    edited = bot.server.wait_for_edit(ADMIN, listing["message_id"], timeout=60)
    assert edited["text"].startswith("Articles 4–6 of")
    [usage] = bot.ask(ADMIN, "/remove", user_id=ADMIN)
    assert "Usage" in usage["text"]
    [missing] = bot.ask(ADMIN, "/remove 9999", user_id=ADMIN)
    assert "no article #9999" in missing["text"]
    [stats] = bot.ask(ADMIN, "/stats", user_id=ADMIN)
    assert "Articles:" in stats["text"] and "all-MiniLM-L6-v2" in stats["text"]
    assert "on openvino" in stats["text"]  # the bot's model runs on the default runtime


def test_groups_answer_only_when_mentioned(bot: RunningBot) -> None:
    group = -1001
    bot.server.send_text(group, "random chatter about the weather", chat_type="group", user_id=7)
    [reply] = bot.ask(group, f"@{bot.server.bot_user['username']} where did Perseverance land?",
                      chat_type="group", user_id=7)
    assert "Jezero" in reply["text"]
    assert len(bot.server.messages(group)) == 1  # the chatter got no reply


def test_unknown_commands_point_to_help_in_private_and_when_addressed_in_groups(bot: RunningBot) -> None:
    for command in ("/hlep", "/watch"):
        [reply] = bot.ask(510, f"{command} the port strike")
        assert reply["text"] == f"I don't know {command}. Send /help to see what I can do."
    group, username = -1002, bot.server.bot_user["username"]
    bot.server.send_text(group, "/hlep", chat_type="group", user_id=7)  # for whichever bot knows it: quiet
    bot.server.send_text(group, "/watch@OtherNewsBot", chat_type="group", user_id=7)  # another bot's: quiet
    [reply] = bot.ask(group, f"/watch@{username} the port strike", chat_type="group", user_id=7)
    assert reply["text"] == "I don't know /watch. Send /help to see what I can do."
    [known] = bot.ask(group, f"/help@{username}", chat_type="group", user_id=7)
    assert known["text"].startswith("I answer questions")
    time.sleep(2)  # time for a reply to the quiet ones, were one coming
    assert len(bot.server.messages(group)) == 2


def test_buttons_of_no_known_kind_are_answered_as_stale(bot: RunningBot) -> None:
    chat = 511
    [own] = bot.ask(chat, "/help")
    for data in ("page:2", "more:abc:two", "list:-1"):
        query_id = bot.server.press_button(chat, own["message_id"], data, check_keyboard=False)
        answer = bot.server.wait_until(
            lambda: next((c for c in bot.server.answered_callbacks if c["callback_query_id"] == query_id), None),
            timeout=30, describe=lambda: str(bot.server.answered_callbacks))
        assert answer["text"] == "This button no longer works.", data
    assert len(bot.server.messages(chat)) == 1  # only the /help reply


def test_rate_limited_reply_is_delivered_exactly_once(bot: RunningBot) -> None:
    chat = 506
    bot.server.fail_next("sendMessage", status=429, retry_after=1)
    [reply] = bot.ask(chat, "Who released ChatGPT?")
    assert "OpenAI" in reply["text"]
    time.sleep(2)
    assert len(bot.server.messages(chat)) == 1


def test_commands_are_registered_for_everyone_and_for_admins(bot: RunningBot) -> None:
    commands = bot.server.commands
    public = {c["command"] for c in commands["default"]}
    admin = {c["command"] for c in commands[f"chat:{ADMIN}"]}
    assert {"help", "start"} <= public and "add" not in public
    assert {"add", "remove", "list", "stats"} <= admin


def test_empty_and_huge_messages_get_a_clear_answer(bot: RunningBot) -> None:
    [reply] = bot.ask(507, "x" * 4000)
    assert "too long" in reply["text"]
    [reply] = bot.ask(507, "🙂🙂")
    assert "in words" in reply["text"]


def test_token_never_appears_in_the_logs(bot: RunningBot) -> None:
    bot.ask(508, UN_QUESTION)
    log = bot.log()
    assert "ready" in log  # the bot did log
    assert bot.server.token not in log
    assert bot.server.token.split(":")[1] not in log


def test_admin_adds_urls_with_progress_and_a_summary(bot: RunningBot, site: str) -> None:
    bot.server.send_text(ADMIN, f"/add {site}/story {site}/missing {site}/story?utm_source=feed", user_id=ADMIN)
    [progress] = bot.server.wait_for_messages(ADMIN, timeout=60)
    final = bot.server.wait_until(
        lambda: next((m for m in bot.server.messages(ADMIN) if m["message_id"] == progress["message_id"]
                      and m["text"].startswith("Done")), None), timeout=120,
        describe=lambda: str(bot.server.messages(ADMIN)[-1]))
    assert "Port strike ends after nine days" in final["text"]
    assert "404" in final["text"] and "Already in the library" in final["text"]
    assert "1 added, 1 duplicate, 1 failed" in final["text"]


def test_admin_subscribes_to_a_feed_and_new_entries_arrive_by_themselves(bot: RunningBot, site: str) -> None:
    [refusal] = bot.ask(509, f"/subscribe {site}/feed.xml")
    assert "only the bot's admins" in refusal["text"]
    [subscribed] = bot.ask(ADMIN, f"/subscribe {site}/feed.xml", user_id=ADMIN)
    assert "Subscribed to Test Gazette" in subscribed["text"] and "2 added" in subscribed["text"]
    web_pages.FEED_ITEMS.append(3)  # the feed gains an entry; the bot's job picks it up

    def telescope_answer() -> dict | None:
        # each try is a new question: asked again within the conversation's time, it would be read as a
        # follow-up of the try before, which the new entry may have missed
        bot.ask(ADMIN, "/new", user_id=ADMIN)
        [reply] = bot.ask(ADMIN, "Can I borrow a telescope from the library?", user_id=ADMIN)
        citation = next((line for line in reply["text"].split("\n") if line.startswith("— ")), "")
        return reply if "telescope" in citation.lower() else None  # the answer is cited from the new entry

    reply = bot.server.wait_until(lambda: telescope_answer() or (time.sleep(1) or None), timeout=90,
                                  describe=lambda: "the feed's new entry never became searchable")
    assert web_pages.NEWS_STORIES[3][0] in reply["text"]
    [feeds] = bot.ask(ADMIN, "/feeds", user_id=ADMIN)
    assert "Test Gazette" in feeds["text"] and "3 articles added" in feeds["text"]
    [gone] = bot.ask(ADMIN, "/unsubscribe 1", user_id=ADMIN)
    assert "Unsubscribed" in gone["text"]


def test_webhook_mode_answers_updates_pushed_by_the_server(sample_library_dir: Path, tmp_path: Path) -> None:
    """bot.mode = webhook: PTB's own web server on 127.0.0.1 receives the updates the emulator pushes."""
    data_dir = tmp_path / "data"
    shutil.copytree(sample_library_dir, data_dir)
    with socket.socket() as probe:  # a free port for the bot's webhook server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with BotApiServer() as server:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
               "TELEGRAM_BOT_TOKEN": server.token, "TELEGRAM_API_BASE_URL": server.base_url,
               "NEWSBOT_DATA_DIR": str(data_dir), "NEWSBOT_BOT_MODE": "webhook",
               "NEWSBOT_BOT_WEBHOOK_LISTEN": "127.0.0.1", "NEWSBOT_BOT_WEBHOOK_PORT": str(port),
               "NEWSBOT_BOT_WEBHOOK_URL": f"http://127.0.0.1:{port}"}
        with open(tmp_path / "bot.log", "w") as log:
            process = subprocess.Popen([sys.executable, "-m", "bot"], cwd=PROJECT, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                webhook = server.wait_for_call("setWebhook", timeout=180)
                assert webhook["url"] == f"http://127.0.0.1:{port}/telegram" and webhook["secret_token"]
                server.send_text(601, UN_QUESTION)
                [reply] = server.wait_for_messages(601, timeout=60)
                assert "Security Council" in reply["text"]
                assert not server.calls_of("getUpdates")
            finally:
                stop_bot(process)


def test_replies_lead_with_the_answer_and_fit_one_phone_screen(bot: RunningBot) -> None:
    visible = []
    for chat, question in enumerate(SAMPLE_QUESTIONS, 520):
        [reply] = bot.ask(chat, question)
        html, text, entities = reply["html"], reply["text"], reply["entities"]
        lead, citation = text.split("\n")[:2]
        # the answer first, in bold, then its citation: the article's title linked, source, date, passage
        assert entities[0] == {"type": "bold", "offset": 0, "length": len(lead)}, question
        link = next(e for e in entities if e["type"] == "text_link")
        assert link["url"].startswith("https://example.org/news/") and link["offset"] == len(lead) + 3
        assert citation.startswith("— ") and "Sample Wire" in citation and "· passage " in citation
        # the passages: each in an expandable quote, numbered, its own sentence bold; articles named once
        quotes = [e for e in entities if e["type"] == "expandable_blockquote"]
        assert len(quotes) == 3 and html.count("<blockquote expandable><b>") == 3
        assert all(any(b["type"] == "bold" and q["offset"] < b["offset"] < q["offset"] + q["length"]
                       for b in entities if b["offset"] >= q["offset"] + 3) for q in quotes)
        urls = [e["url"] for e in entities if e["type"] == "text_link"]
        assert len(urls[1:]) == len(set(urls[1:])) and urls[0] not in urls[1:]  # grouped by article
        visible.append(render.visible_length(html))
    assert statistics.median(visible) <= 600, visible
    assert max(visible) <= 800, visible


def test_inline_queries_offer_passages_to_send_into_any_chat(bot: RunningBot) -> None:
    server = bot.server
    assert "send /setinline to @BotFather" in bot.log()  # inline mode was off for the bot when it started
    server.enable_inline_mode()
    assert "inline_query" in server.calls_of("getUpdates")[-1]["allowed_updates"]
    query_id = server.send_inline_query(530, "Who released ChatGPT?", chat_type="group")
    answer = server.wait_for_inline_answer(query_id, timeout=60)
    assert 1 <= len(answer["results"]) <= 5 and answer["cache_time"] == 30 and answer["is_personal"] is False
    assert answer["seconds"] < 10  # within the deadline, on a busy test machine too
    best = answer["results"][0]
    assert best["title"] == "OpenAI opens its ChatGPT chatbot to the public" and "OpenAI" in best["description"]
    assert best["text"].startswith(best["title"] + " — Sample Wire, 30 Nov 2022\n")
    types = [e["type"] for e in best["entities"]]
    assert types[:2] == ["text_link", "expandable_blockquote"] and "bold" in types
    assert best["entities"][0]["url"] == "https://example.org/news/2022/11/openai-launches-chatgpt"


def test_short_command_and_superseded_inline_queries_get_nothing(bot: RunningBot) -> None:
    server = bot.server
    server.enable_inline_mode()
    [before] = bot.ask(531, "/help")
    for query in ("UN", "/remove 1", "/stats"):
        answer = server.wait_for_inline_answer(server.send_inline_query(ADMIN, query), timeout=60)
        assert answer["results"] == [], query
    [after] = bot.ask(531, "/help")
    assert before["text"] == after["text"]  # nothing was removed
    # a newer query from the same user cancels the older one, which is never answered
    older = server.send_inline_query(532, "Who rele")
    newer = server.send_inline_query(532, "Who released ChatGPT?")
    assert server.wait_for_inline_answer(newer, timeout=60)["results"]
    time.sleep(2)
    assert [a for a in server.inline_answers if a["inline_query_id"] == older] == []
    # another user's query is not cancelled by it
    first = server.send_inline_query(533, "Where did the Perseverance rover land?")
    second = server.send_inline_query(534, "Who released ChatGPT?")
    assert server.wait_for_inline_answer(first, timeout=60)["results"]
    assert server.wait_for_inline_answer(second, timeout=60)["results"]


def test_with_inline_off_inline_queries_are_neither_asked_for_nor_answered(sample_library_dir: Path,
                                                                           tmp_path: Path) -> None:
    shutil.copytree(sample_library_dir, tmp_path / "data")
    with running_bot(tmp_path, {"NEWSBOT_BOT_INLINE": "false"}) as quiet:
        quiet.server.enable_inline_mode()
        assert "inline_query" not in quiet.server.calls_of("getUpdates")[-1]["allowed_updates"]
        quiet.server.send_inline_query(540, "Who released ChatGPT?")
        [reply] = quiet.ask(540, "Who released ChatGPT?")  # the bot is serving all the same
        assert "OpenAI" in reply["text"]
        time.sleep(1)
        assert quiet.server.inline_answers == [] and not quiet.server.calls_of("answerInlineQuery")
        assert "setinline" not in quiet.log()
