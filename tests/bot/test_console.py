"""The terminal console over the sample library: its commands, and an answer to the ones it does not know."""

from __future__ import annotations

import io
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
