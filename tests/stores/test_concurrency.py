"""Concurrency: questions answered while admins add articles through the bot and the CLI writes to the
same library at the same time (one data directory, or one PostgreSQL database); nothing is lost or
corrupted."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from tests.support.bot_runner import PROJECT, SAMPLE_QUESTIONS, running_bot
from tests.support.helpers import run_cli

ADMINS = (111, 222)
# Per admin, through the bot; the CLI adds as many at the same time. Fewer on PostgreSQL, where the
# same code paths run a second time (only the store differs), to keep the suite's time in bounds.
ARTICLES = {"embedded": 50, "postgres": 15}


WORDS = ("cheese bakery orchard cider pottery honey flowers lanterns tiles fabric timber pumpkins "
         "herbs olives walnuts candles saddles baskets lace spices").split()


def article(author: str, number: int) -> str:
    """A distinct article (unlike its siblings, so no near-duplicate linking) about one made-up town."""
    town = f"{author}ville{number}"
    rng = random.Random(town)
    goods = [" and ".join(rng.sample(WORDS, 2)) for _ in range(4)]
    return (f"Market hall reopens in {town}\n"
            f"The market hall of {town} reopened on Saturday. Traders from {town} said {number + 40} stalls are "
            f"let. " + " ".join(f"Stall {rng.randint(1, 99)} sells {g} from {rng.choice(WORDS)} farms near "
                               f"{town}, {rng.randint(2, 30)} kilometres away." for g in goods))


@pytest.fixture
def store_env(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment that points the bot and the CLI at a copy of the sample library on each store."""
    if store_kind == "embedded":
        shutil.copytree(request.getfixturevalue("sample_library_dir"), tmp_path / "data")
        return {}
    return {"NEWSBOT_LIBRARY_STORE": "postgres",
            "NEWSBOT_POSTGRES_DSN": request.getfixturevalue("sample_postgres_copy_dsn")}


def stored_titles(store_kind: str, tmp_path: Path, env: dict[str, str]) -> list[str]:
    """The market hall titles in the library, after checking the database's integrity."""
    query = "SELECT title FROM articles WHERE title LIKE 'Market hall%'"
    if store_kind == "embedded":
        with closing(sqlite3.connect(tmp_path / "data" / "library.sqlite3")) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            return [row[0] for row in db.execute(query)]
    with psycopg.connect(env["NEWSBOT_POSTGRES_DSN"]) as db:
        assert db.execute("SELECT count(*) FROM passages WHERE vector IS NULL").fetchone()[0] == 0
        return [row[0] for row in db.execute(query)]


def test_questions_and_two_admins_and_the_cli_at_once(store_kind: str, store_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    articles = ARTICLES[store_kind]
    with running_bot(tmp_path, {"NEWSBOT_ADMIN_IDS": ",".join(map(str, ADMINS)),
                                "NEWSBOT_LIBRARY_LOCK_TIMEOUT": "60", **store_env}) as bot:
        server = bot.server
        cli_texts = tmp_path / "cli"
        cli_texts.mkdir()
        for number in range(articles):
            (cli_texts / f"cli{number}.txt").write_text(article("cli", number))
        cli = subprocess.Popen([sys.executable, "-m", "index", "add", str(cli_texts)], cwd=PROJECT,
                               env={**os.environ, "NEWSBOT_DATA_DIR": str(tmp_path / "data"),
                                    "NEWSBOT_LIBRARY_LOCK_TIMEOUT": "60", "HF_HUB_OFFLINE": "1", **store_env},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def admin_adds(admin: int) -> None:
            for number in range(articles):
                server.send_text(admin, "/add " + article(f"a{admin}", number), user_id=admin)

        senders = [threading.Thread(target=admin_adds, args=(admin,)) for admin in ADMINS]
        for sender in senders:
            sender.start()
        askers = range(80_000, 80_010)
        for chat in askers:
            server.send_text(chat, SAMPLE_QUESTIONS[chat % len(SAMPLE_QUESTIONS)])
        for sender in senders:
            sender.join()
        for chat in askers:  # questions are answered while the adds go on
            [reply] = server.wait_for_messages(chat, timeout=300)
            assert "not in my articles" not in reply["text"].casefold()
        for admin in ADMINS:
            replies = server.wait_for_messages(admin, count=articles, timeout=600)
            assert all("✅ Added" in r["text"] for r in replies), [r["text"][:80] for r in replies]
        output, _ = cli.communicate(timeout=600)
        assert cli.returncode == 0, output
        # everything written by either process is searchable through the bot
        for author in ("cli", f"a{ADMINS[0]}", f"a{ADMINS[1]}"):
            [reply] = bot.ask(90_000 + len(author), f"How many stalls are let in {author}ville3?")
            assert f"{author}ville3" in reply["text"] and "43 stalls" in reply["text"]
    titles = stored_titles(store_kind, tmp_path, store_env)
    assert len(titles) == 3 * articles and len(set(titles)) == 3 * articles
    listing = run_cli("list", "--limit", "100", data_dir=tmp_path / "data", env=store_env)
    assert listing.returncode == 0 and "Market hall reopens in cliville0" in listing.stdout
