"""Numbers typed as command arguments: every entry point (CLI, chat service, console) answers a bad one with
one clear "not a valid ..." message, never a traceback (issue 18, defect 7)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from bot.console import CONSOLE_USER_ID, Console
from bot.service import ChatService
from index.config import Settings
from index.embedding.embedder import Embedder
from index.inputs import MAX_ID, InvalidNumber, parse_count, parse_id, parse_number, parse_offset
from index.library import Library
from tests.support.helpers import run_cli

ADMIN = 111
HUGE = "99999999999999999999"  # beyond SQLite's 64-bit integers
# Unicode digits that str.isdigit() accepts (superscript two, Arabic-Indic three, fullwidth one), a
# negative number, a fraction, Python's digit separator, and a number too long for int() to read.
BAD_NUMBERS = ["²", "٣", "１", "-1", "1.5", "1_000", "1e3", "", "9" * 5000]


@pytest.mark.parametrize("text", BAD_NUMBERS + [HUGE, str(MAX_ID + 1), "0", "#0"])
def test_ids_are_ascii_digits_within_64_bits(text: str) -> None:
    with pytest.raises(InvalidNumber, match="is not a valid article number"):
        parse_id(text, "article number")


def test_good_ids_offsets_and_counts_are_read() -> None:
    assert parse_id("12") == parse_id("#12") == parse_id(" 12 ") == parse_id("0012") == 12
    assert parse_id(str(MAX_ID)) == MAX_ID
    assert parse_offset("0") == 0
    assert parse_count("3") == 3
    assert parse_number("7", "page", 1, 7) == 7


def test_offsets_and_counts_have_their_own_ranges() -> None:
    with pytest.raises(InvalidNumber, match="'-1' is not a valid offset: a whole number from 0"):
        parse_offset("-1")
    with pytest.raises(InvalidNumber, match="not a valid count: a whole number from 1 to 1000000"):
        parse_count("0")
    with pytest.raises(InvalidNumber, match="not a valid count"):
        parse_count("1000001")
    with pytest.raises(InvalidNumber, match="not a valid page"):
        parse_number("8", "page", 1, 7)


def test_long_arguments_are_shortened_in_the_message() -> None:
    with pytest.raises(InvalidNumber) as caught:
        parse_id("9" * 5000)
    assert len(str(caught.value)) < 120


@pytest.mark.parametrize("args", [
    ["remove", HUGE], ["remove", "²"], ["remove", "3", "-4"],
    ["feed", "remove", HUGE], ["feed", "remove", "٣"],
    ["list", "--offset", HUGE], ["list", "--offset", "²"], ["list", "--limit", "0"],
    ["search", "harbour", "-k", HUGE],
])
def test_cli_refuses_bad_numbers_with_one_clear_line(args: list[str], tmp_path: Path) -> None:
    result = run_cli(*args, data_dir=tmp_path / "data")
    assert result.returncode == 2, result.stderr
    assert "is not a valid" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists(), "the library must not even be opened"


def test_cli_takes_the_largest_id_and_offset(sample_library_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(sample_library_dir, data_dir)
    removed = run_cli("remove", str(MAX_ID), data_dir=data_dir)
    assert removed.returncode == 1 and f"#{MAX_ID}: no such article" in removed.stderr, removed.stderr
    listing = run_cli("list", "--offset", str(MAX_ID), data_dir=data_dir)
    assert listing.returncode == 0 and "No articles at offset" in listing.stdout, listing.stderr
    feed = run_cli("feed", "remove", str(MAX_ID), data_dir=data_dir)
    assert feed.returncode == 1 and f"no feed #{MAX_ID}" in feed.stderr, feed.stderr


@pytest.fixture
def service(sample_copy_settings: Settings, embedder: Embedder) -> Iterator[ChatService]:
    settings = sample_copy_settings.replace("bot", admin_ids=(ADMIN,))
    with Library(settings, embedder=embedder) as library:
        yield ChatService(library, settings)


@pytest.mark.parametrize("argument", [HUGE, "#" + HUGE, "²", "٣", "-3", "1_0"])
def test_service_refuses_bad_ids_in_remove_and_unsubscribe(service: ChatService, argument: str) -> None:
    before = service.library.count_articles()
    removed = service.remove(ADMIN, argument).html
    assert "is not a valid article number" in removed and "Usage: /remove" in removed
    unsubscribed = service.unsubscribe(ADMIN, argument).html
    assert "is not a valid feed number" in unsubscribed and "Usage: /unsubscribe" in unsubscribed
    assert service.library.count_articles() == before


def test_service_takes_the_largest_ids(service: ChatService) -> None:
    assert f"no article #{MAX_ID}" in service.remove(ADMIN, str(MAX_ID)).html
    assert f"no feed #{MAX_ID}" in service.unsubscribe(ADMIN, f"#{MAX_ID}").html


def test_console_takes_unicode_digits_and_huge_numbers_without_crashing(service: ChatService) -> None:
    out = io.StringIO()
    console = Console(ChatService(service.library, service.settings.replace(
        "bot", admin_ids=(CONSOLE_USER_ID,))), out=out, colour=False)
    console.show(console.handle("what did the UN Security Council say?"))
    assert "[1] More passages" in out.getvalue()
    for line in ["²", "٣", HUGE, "9" * 5000, "0"]:  # not one of the buttons shown: asked as a question
        replies = console.handle(line)
        assert replies and replies[0].html
    assert "is not a valid article number" in console.handle(f"/remove {HUGE}")[0].html
    assert "is not a valid feed number" in console.handle("/unsubscribe ²")[0].html
    assert "Sources" in console.handle("2")[0].html  # a button's number still presses it
    console.run(io.StringIO("²\n/remove ²\n/quit\n"))
    assert "is not a valid article number" in out.getvalue()
