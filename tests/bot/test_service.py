"""The chat logic shared by Telegram and the console, on the sample library."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from bot.service import ChatService, parse_add_arguments
from index.config import Settings
from index.embedding.embedder import Embedder
from index.library import Library

ADMIN, USER = 111, 222
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def service(sample_copy_settings: Settings, embedder: Embedder) -> Iterator[ChatService]:
    settings = sample_copy_settings.replace("bot", admin_ids=(ADMIN,))
    with Library(settings, embedder=embedder) as library:
        yield ChatService(library, settings)


def test_question_gets_passages_with_buttons_and_more_pages(service: ChatService) -> None:
    replies = service.answer(5, "what did the UN Security Council say?")
    assert "Security Council" in replies[0].html and "<b>" in replies[0].html
    buttons = [b for row in replies[-1].buttons for b in row]
    assert [b.label for b in buttons] == ["More passages", "Sources", "👍", "👎"]
    more = service.more(5, buttons[0].data.split(":")[1], 1)
    assert "<b>4.</b>" in more[0].html
    assert "Sources" in service.sources(5, buttons[1].data.split(":")[1]).html
    # a token from another chat (forged or leaked callback data) finds nothing
    assert "no longer available" in service.more(6, buttons[0].data.split(":")[1], 1)[0].html


@pytest.mark.parametrize("question, expected", [
    ("", "send me a question"),
    ("\u200b\u200f  ", "send me a question"),
    ("x" * 100_000, "too long"),
    ("🙂🙂🙂", "in words"),
])
def test_bad_questions_get_a_clear_message(service: ChatService, question: str, expected: str) -> None:
    replies = service.answer(1, question)
    assert len(replies) == 1 and expected in replies[0].html


def test_right_to_left_question_is_answered_or_refused_politely(service: ChatService) -> None:
    replies = service.answer(1, "ما الذي قاله مجلس الأمن؟")
    assert replies and replies[0].html


def test_non_admins_change_nothing(service: ChatService) -> None:
    before = service.library.count_articles()
    text = "Title\n" + "word " * 100
    for reply in [service.add_text(USER, text, "x"), service.add_document(USER, text.encode(), "a.txt", "x"),
                  service.remove(USER, "1"), service.list_page(USER, 0), service.stats(USER)]:
        assert "only the bot's admins" in reply.html
    async def add_as_user() -> list:
        return [r async for r in service.add_urls(USER, ["https://example.org"], "x")]

    assert asyncio.run(add_as_user()) == []
    assert service.library.count_articles() == before
    assert "/add" not in service.help(USER).html and "/add" in service.help(ADMIN).html


def test_admin_add_remove_list(service: ChatService) -> None:
    text = "Harbour reopens\n" + "The harbour reopened on Monday after repairs to the sea wall were finished. " * 5
    assert "Added" in service.add_text(ADMIN, text, "t").html
    assert "Already in the library" in service.add_text(ADMIN, text, "t").html
    listing = service.list_page(ADMIN, 0)
    assert "Harbour reopens" in listing.html
    assert "Usage" in service.remove(ADMIN, "").html and "Usage" in service.remove(ADMIN, "1 2").html
    assert "no article #999" in service.remove(ADMIN, "999").html
    article_id = service.library.list_articles(0, 1)[0].id
    assert "Removed" in service.remove(ADMIN, f"#{article_id}").html
    assert "Articles: 7" in service.stats(ADMIN).html


def test_parse_add_arguments() -> None:
    assert parse_add_arguments("https://a.test/x http://b.test") == (["https://a.test/x", "http://b.test"], None)
    assert parse_add_arguments("Title\nhttps://a.test is great") == ([], "Title\nhttps://a.test is great")
    assert parse_add_arguments("  ") == ([], None)


def test_main_command_without_token_runs_the_console_on_samples(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "NEWSBOT_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1",
           "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "bot"], input="what did the UN Security Council say?\n2\n/quit\n",
                          capture_output=True, text=True, cwd=PROJECT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "local chat in the terminal" in proc.stderr
    assert "condemned" in proc.stdout and "Sources" in proc.stdout


def test_the_answer_comes_first_then_quoted_passages(service: ChatService) -> None:
    from tests.support.botapi import parse_html

    [reply] = service.answer(7, "What did the council threaten if the launches continue?")
    first, citation, *rest = reply.html.split("\n")
    assert first.startswith("<b>") and first.endswith("</b>") and "sanctions" in first
    assert citation.startswith('— <a href="https://example.org/news/2017/04/') and "· passage " in citation
    assert rest[0].startswith("<blockquote expandable><b>")
    text, entities = parse_html(reply.html)
    assert text.startswith(first[3:-4]) and entities[0]["type"] == "bold" and entities[0]["offset"] == 0
    assert sum(e["type"] == "expandable_blockquote" for e in entities) == service.settings.search.k
    more = service.more(7, reply.buttons[0][0].data.split(":")[1], 1)
    assert more[0].html.split("\n")[1].startswith("<blockquote expandable><b>4.</b>")  # no lead on page 2


def test_inline_answers_offer_passages_and_refuse_short_queries_and_commands(service: ChatService) -> None:
    from bot.service import INLINE_RESULTS
    from tests.support.botapi import parse_html

    answers = service.inline_answers("Who released ChatGPT?")
    assert 1 <= len(answers) <= INLINE_RESULTS and len({a.result_id for a in answers}) == len(answers)
    best = answers[0]
    assert best.title == "OpenAI opens its ChatGPT chatbot to the public" and "OpenAI" in best.description
    text, entities = parse_html(best.html)
    assert text.startswith(best.title) and best.description.rstrip("…") in " ".join(text.split())
    assert [e["type"] for e in entities][:2] == ["text_link", "expandable_blockquote"]
    before = service.library.count_articles()
    for query in ["", "UN", "abc", "🙂🙂🙂🙂", "/remove 1", "/stats", "x" * 5000]:
        assert service.inline_answers(query) == [], query
    assert service.library.count_articles() == before
    assert service.inline_answers("Which team won the 1994 curling championship in Manitoba?") == []
