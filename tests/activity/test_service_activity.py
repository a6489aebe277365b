"""ChatService's part in reader activity: questions recorded with hashed askers, the vote buttons (none
with insights off), and the console's vote buttons."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

from bot.console import CONSOLE_USER_ID, Console
from bot.service import ChatService
from index.config import Settings
from index.embedding.embedder import Embedder
from index.library import Library

UN_QUESTION = "what did the UN Security Council say?"
SINCE = datetime.now(timezone.utc) - timedelta(days=1)


def test_questions_are_recorded_with_hashed_askers_and_answers_carry_vote_buttons(
        sample_copy_settings: Settings, embedder: Embedder) -> None:
    with Library(sample_copy_settings, embedder=embedder) as library:
        service = ChatService(library, sample_copy_settings)
        replies = service.answer(-500, UN_QUESTION, user_id=4242)
        labels = [[button.label for button in row] for row in replies[-1].buttons]
        assert labels == [["More passages", "Sources", "👍", "👎"]]
        service.answer(-500, "How many street trees will the city council plant?", user_id=4343)
        asked = service.activity.store.questions_since(SINCE)
        assert [(q.question, q.answered) for q in asked] == [
            (UN_QUESTION, True), ("How many street trees will the city council plant?", False)]
        assert all("4242" not in q.asker and "4343" not in q.asker and len(q.asker) == 32 for q in asked)
        assert asked[0].asker != asked[1].asker and asked[0].reply_ms >= 0
        token = replies[-1].buttons[0][-1].data.split(":")[1]
        assert service.activity.vote(-500, token, 4343, up=False).status == "recorded"
        service.activity.close()


def test_with_insights_off_answers_have_no_vote_buttons_and_nothing_is_stored(
        sample_copy_settings: Settings, embedder: Embedder) -> None:
    off = sample_copy_settings.replace("insights", enabled=False)
    with Library(off, embedder=embedder) as library:
        service = ChatService(library, off)
        replies = service.answer(5, UN_QUESTION, user_id=5)
        assert [[button.label for button in row] for row in replies[-1].buttons] == [["More passages", "Sources"]]
        assert service.activity.store.questions_since(SINCE) == []
        service.activity.close()


def test_the_console_takes_votes(sample_copy_settings: Settings, embedder: Embedder) -> None:
    settings = sample_copy_settings.replace("bot", admin_ids=(CONSOLE_USER_ID,))
    with Library(settings, embedder=embedder) as library:
        out = io.StringIO()
        console = Console(ChatService(library, settings), out=out, colour=False)
        console.show(console.handle(UN_QUESTION))
        assert "[3] 👍  [4] 👎" in out.getvalue()
        assert console.handle("4")[0].html.startswith("Thanks for the 👎")
        assert console.handle("3")[0].html == "Changed to 👍"
        console.service.activity.close()


def test_a_failing_activity_store_leaves_answers_alone(sample_copy_settings: Settings, embedder: Embedder,
                                                       caplog) -> None:
    with Library(sample_copy_settings, embedder=embedder) as library:
        service = ChatService(library, sample_copy_settings)
        service.activity.store.close()  # the activity file can no longer be written
        replies = service.answer(5, UN_QUESTION, user_id=5)
        assert "Security Council" in replies[0].html
        assert "could not record a question" in caplog.text
