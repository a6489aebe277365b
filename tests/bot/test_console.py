"""The terminal console over the sample library: its commands, and an answer to the ones it does not know."""

from __future__ import annotations

import io
import re
from typing import Iterator

import pytest

from bot.console import CONSOLE_USER_ID, Console, to_terminal
from bot.service import ChatService
from index.config import Settings
from index.embedding.embedder import Embedder
from index.library import Library


@pytest.fixture
def console(sample_copy_settings: Settings, embedder: Embedder) -> Iterator[Console]:
    settings = sample_copy_settings.replace("bot", admin_ids=(CONSOLE_USER_ID,))
    with Library(settings, embedder=embedder) as library:
        yield Console(ChatService(library, settings), out=io.StringIO(), colour=False)


def said(console: Console, line: str) -> str:
    replies = console.handle(line)
    assert replies is not None
    return "\n".join(to_terminal(reply.html, colour=False) for reply in replies)


def test_an_unknown_command_is_named_with_the_commands_the_console_knows(console: Console) -> None:
    answer = said(console, "/hlep me")
    assert answer.startswith("I don't know /hlep.") and "/help" in answer and "/quit" in answer
    assert said(console, "/<b>x</b>").startswith("I don't know /<b>x</b>.")  # shown as typed, not as markup
    assert "Admin commands" in said(console, "/help")


def test_typed_button_numbers_press_the_buttons_shown(console: Console) -> None:
    console.show(console.handle("what did the UN Security Council say?"))
    assert "[2] Sources" in console.out.getvalue()
    assert said(console, "2").startswith("Sources")
    assert console.handle("/quit") is None


def test_answers_show_the_answer_then_its_citation_then_the_passages_indented(console: Console) -> None:
    answer = said(console, "What did the council threaten if the launches continue?")
    first, citation, *passages = answer.split("\n")
    assert "sanctions" in first and not first.startswith(" ")
    assert citation.startswith("— UN Security Council condemns") and "<https://example.org/news/2017/04/" in citation
    assert "passage " in citation
    assert re.match(r"  │ \d\. ", passages[0])  # the first passage's quote, its number first
    quoted = [line for line in passages if line.startswith("  │ ")]
    assert len(quoted) > 3 and all(len(line) <= 100 for line in quoted)  # wrapped, not one long line each
    assert "<b>" not in answer and "<blockquote" not in answer


def test_quotes_keep_bold_inside_and_the_bar_plain_in_colour() -> None:
    html = "<b>Lead</b>\n<blockquote expandable><b>1.</b> " + "<b>" + "bold words " * 20 + "</b> tail</blockquote>"
    shown = to_terminal(html, colour=True, width=40)
    quote_lines = shown.split("\n")[1:]
    assert len(quote_lines) > 3 and all(line.startswith("  │ ") for line in quote_lines)
    assert all("\033[1m" not in line.split("│")[0] for line in quote_lines)  # the bar itself is never bold
    assert quote_lines[1].startswith("  │ \033[1m") and quote_lines[0].endswith("\033[0m")


def test_insights_list_a_question_the_console_could_not_answer(console: Console) -> None:
    console.handle("what is the airspeed of an unladen swallow?")
    report = said(console, "/insights")
    assert "unladen swallow" in report and "Open questions" in report
    assert said(console, "/insights 0").startswith("Usage")
