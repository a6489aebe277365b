"""Two bot replicas in webhook mode behind a round-robin balancer, sharing one PostgreSQL library."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from tests.support.bot_runner import start_replicas
from tests.support.botapi import BotApiServer

ADMIN = 111


def buttons(message: dict) -> list[dict]:
    markup = message.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def test_replicas_share_answers_adds_and_buttons(sample_postgres_copy_dsn: str, tmp_path: Path) -> None:
    postgres_dsn = sample_postgres_copy_dsn  # the sample articles
    with ExitStack() as stack:
        server = stack.enter_context(BotApiServer())
        balancer, replicas = start_replicas(stack, server, tmp_path, postgres_dsn, str(ADMIN))
        assert server.calls_of("setWebhook")[-1]["url"] == balancer.url + "/telegram"

        # Questions from several chats are spread over both replicas, and each is answered once.
        for chat in range(701, 705):
            server.send_text(chat, "what did the UN Security Council say?")
        for chat in range(701, 705):
            [reply] = server.wait_for_messages(chat, timeout=90)
            assert "Security Council" in reply["text"]
        assert all(count > 0 for count in balancer.served), balancer.served

        # "More passages" and "Sources" work whichever replica the button press reaches.
        [first] = server.messages(701)[-1:]
        more, source_button, _up, _down = (b["callback_data"] for b in buttons(first))
        for _ in range(2):
            server.press_button(701, first["message_id"], more)
            [page] = server.wait_for_messages(701, timeout=60)
            assert "4." in page["text"]
        server.press_button(701, first["message_id"], source_button)
        [sources] = server.wait_for_messages(701, timeout=60)
        assert sources["text"].startswith("Sources")

        # An article added through one replica is found at once through the other.
        body = ("The harbour authority of Port Elloran approved a tidal barrier on Tuesday, after storms "
                "flooded the old quay twice this winter. Construction of the barrier starts in spring. ") * 3
        server.send_text(ADMIN, "/add Port Elloran approves a tidal barrier\n" + body, user_id=ADMIN)
        [added] = server.wait_for_messages(ADMIN, timeout=90)
        assert "Added" in added["text"], added["text"]
        served_before = list(balancer.served)
        for chat in (711, 712):
            server.send_text(chat, "What did the Port Elloran harbour authority approve?")
            [reply] = server.wait_for_messages(chat, timeout=90)
            assert "tidal barrier" in reply["text"]
        assert all(after > before for after, before in zip(balancer.served, served_before)), balancer.served
        assert all(process.poll() is None for process in replicas)
