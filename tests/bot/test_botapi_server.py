"""Tests of the Bot API emulator, driven by PTB's real ``telegram.Bot`` over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, InvalidToken, NetworkError, RetryAfter
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes

from tests.support.botapi import BotApiServer, parse_html

T = TypeVar("T")
CHAT = 4242


def emulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t.name == "botapi-emulator" or "process_request" in t.name]


@pytest.fixture
def server() -> Iterator[BotApiServer]:
    with BotApiServer(max_poll_timeout=5.0) as srv:
        yield srv
    assert emulator_threads() == []


def make_bot(server: BotApiServer, token: str | None = None) -> Bot:
    return Bot(token or server.token, base_url=server.api_url, base_file_url=server.file_url)


def with_bot(server: BotApiServer, action: Callable[[Bot], Awaitable[T]]) -> T:
    """Run ``action`` with an initialised PTB bot in a fresh event loop."""

    async def main() -> T:
        async with make_bot(server) as bot:
            return await action(bot)

    return asyncio.run(main())


def raw_call(server: BotApiServer, path: str, body: bytes = b"",
             content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    """POST without PTB, returning the HTTP status and the decoded JSON answer."""
    request = urllib.request.Request(f"{server.base_url}{path}", data=body,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def retry_seconds(error: RetryAfter) -> float:
    value = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def test_get_me(server: BotApiServer) -> None:
    me = with_bot(server, lambda bot: bot.get_me())
    assert me.is_bot and me.username == "test_news_bot" and me.id == 123456
    assert me.can_join_groups is True and me.supports_inline_queries is False
    assert server.bot_user["username"] == "test_news_bot"


def test_wrong_token_and_unknown_method(server: BotApiServer) -> None:
    async def wrong_token() -> None:
        await make_bot(server, "999:WRONG").get_me()

    with pytest.raises(InvalidToken):
        asyncio.run(wrong_token())
    assert raw_call(server, "/bot999:WRONG/getMe", b"{}") == (
        401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    assert raw_call(server, f"/bot{server.token}/fooBar", b"{}") == (
        404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"})


def test_raw_bodies_and_case_insensitive_methods(server: BotApiServer) -> None:
    status, answer = raw_call(server, f"/bot{server.token}/SENDMESSAGE",
                              json.dumps({"chat_id": CHAT, "text": "json"}).encode())
    assert status == 200 and answer["result"]["text"] == "json"
    form = urllib.parse.urlencode({"chat_id": str(CHAT), "text": "123"}).encode()
    status, answer = raw_call(server, f"/bot{server.token}/sendmessage", form,
                              "application/x-www-form-urlencoded")
    assert status == 200 and answer["result"]["text"] == "123"
    assert isinstance(answer["result"]["date"], int)
    assert [m for m, _ in server.calls] == ["sendMessage", "sendMessage"]
    received = server.wait_for_messages(CHAT, count=2, timeout=1)
    assert [m["text"] for m in received] == ["json", "123"]


def test_send_message_with_html(server: BotApiServer) -> None:
    html = ('<b>Bold</b> &amp; <a href="https://example.com/?a=1&amp;b=2">link</a> '
            "&lt;3 😀 <i>end</i>")
    message = with_bot(server, lambda bot: bot.send_message(CHAT, html, parse_mode=ParseMode.HTML))
    assert isinstance(message, Message)
    assert message.text == "Bold & link <3 😀 end"
    types = [(e.type, e.offset, e.length) for e in message.entities]
    assert types == [("bold", 0, 4), ("text_link", 7, 4), ("italic", 18, 3)]
    assert message.entities[1].url == "https://example.com/?a=1&b=2"
    [stored] = server.messages(CHAT)
    assert stored["text"] == message.text and stored["html"] == html
    assert stored["message_id"] == message.message_id and stored["reply_markup"] is None


@pytest.mark.parametrize("html", [
    "<b>unclosed", "<b>x</i>", "<div>x</div>", "<br>", "a < b", "&nbsp;", "</b>",
    "<span>x</span>", "<b/>", "<a href='x'", "<tg-emoji>x</tg-emoji>",
    "<blockquote>x", "<blockquote expandable>x</b></blockquote>", "<blockquote><b>x</blockquote></b>",
    "<blockquote><blockquote>x</blockquote></blockquote>",
    "<blockquote expandable>a<blockquote expandable>b</blockquote></blockquote>",
    "<b><blockquote>a</blockquote><blockquote>b<blockquote>c</blockquote></blockquote></b>",
    '<blockquote class="x">q</blockquote>', "<blockquote expandable=\"yes\">q</blockquote>",
    '<a href="https://a.test"><a href="https://b.test">x</a></a>',
])
def test_bad_html_is_rejected(server: BotApiServer, html: str) -> None:
    with pytest.raises(BadRequest, match="(?i)parse entities"):
        with_bot(server, lambda bot: bot.send_message(CHAT, html, parse_mode=ParseMode.HTML))
    assert server.messages(CHAT) == []
    assert "can't parse entities" in server.errors[-1][1]


@pytest.mark.parametrize(("html", "text", "entity_types"), [
    ("a &gt; b &quot;q&quot; &#65;&#x42;", 'a > b "q" AB', []),
    ("AT&T > Q", "AT&T > Q", []),
    ("<B>x</B><strong>y</strong><s>z</s><tg-spoiler>w</tg-spoiler>", "xyzw",
     ["bold", "bold", "strikethrough", "spoiler"]),
    ('<span class="tg-spoiler">s</span><u>u</u><code>c</code>', "suc",
     ["spoiler", "underline", "code"]),
    ('<pre><code class="language-python">x = 1</code></pre>', "x = 1", ["pre"]),
    ("<blockquote expandable>quote</blockquote>", "quote", ["expandable_blockquote"]),
    ("<blockquote>plain</blockquote>", "plain", ["blockquote"]),
    ('<blockquote expandable><b>1.</b> x <a href="https://a.test">y</a></blockquote>\n'
     "<blockquote expandable>z</blockquote>", "1. x y\nz",
     ["expandable_blockquote", "bold", "text_link", "expandable_blockquote"]),
    ("<BLOCKQUOTE EXPANDABLE>q</BLOCKQUOTE>", "q", ["expandable_blockquote"]),
    ("<b><i>both</i></b>", "both", ["bold", "italic"]),
    ("  <b> padded </b>\n", "padded", ["bold"]),
])
def test_html_parsing(html: str, text: str, entity_types: list[str]) -> None:
    from tests.support.botapi.server import strip_text

    plain, entities = strip_text(*parse_html(html))
    assert plain == text
    assert [e["type"] for e in entities] == entity_types
    assert all(e["offset"] >= 0 and e["offset"] + e["length"] <= len(plain) for e in entities)


def test_pre_language_and_empty_text(server: BotApiServer) -> None:
    html = '<pre><code class="language-python">print(1)</code></pre>'
    message = with_bot(server, lambda bot: bot.send_message(CHAT, html, parse_mode="HTML"))
    assert message.entities[0].type == "pre" and message.entities[0].language == "python"
    for empty in (" ", "<b> </b>"):
        with pytest.raises(BadRequest, match="(?i)message text is empty"):
            with_bot(server, lambda bot: bot.send_message(CHAT, empty, parse_mode="HTML"))


def test_length_limit_counts_visible_utf16(server: BotApiServer) -> None:
    async def send(bot: Bot, text: str) -> Message:
        return await bot.send_message(CHAT, text, parse_mode=ParseMode.HTML)

    with pytest.raises(BadRequest, match="(?i)message is too long"):
        with_bot(server, lambda bot: send(bot, "a" * 4097))
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        with_bot(server, lambda bot: send(bot, "😀" * 2049))  # 4098 UTF-16 code units
    assert len(with_bot(server, lambda bot: send(bot, "😀" * 2048)).text) == 2048
    long_markup = "<b>" + "a" * 4096 + "</b>"  # 4103 raw characters, 4096 visible
    assert with_bot(server, lambda bot: send(bot, long_markup)).text == "a" * 4096


def test_get_updates_long_poll_and_offset(server: BotApiServer) -> None:
    sender = threading.Timer(0.3, server.send_text, args=(CHAT, "/start@test_news_bot hi"))

    async def main(bot: Bot) -> None:
        started = time.monotonic()
        sender.start()
        updates = await bot.get_updates(timeout=4)
        assert 0.2 < time.monotonic() - started < 3
        assert len(updates) == 1
        message = updates[0].message
        assert message.text == "/start@test_news_bot hi" and message.chat.type == "private"
        assert message.entities[0].type == "bot_command" and message.entities[0].length == 20
        assert message.from_user.id == CHAT and isinstance(message.date, dtm.datetime)
        assert CommandHandler("start", lambda *_: None).check_update(updates[0])
        assert len(await bot.get_updates()) == 1  # not confirmed yet
        assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()
        assert server.pending_update_count == 0

    try:
        with_bot(server, main)
    finally:
        sender.cancel()
        sender.join()


def test_long_poll_does_not_block_other_calls(server: BotApiServer) -> None:
    async def main(bot: Bot) -> tuple[float, float]:
        started = time.monotonic()
        poll = asyncio.create_task(bot.get_updates(timeout=2))
        await asyncio.sleep(0.2)
        await bot.send_message(CHAT, "while polling")
        sent_after = time.monotonic() - started
        assert await poll == ()
        return sent_after, time.monotonic() - started

    sent_after, polled_for = with_bot(server, main)
    assert sent_after < 1.5 and 1.8 < polled_for < 4


def test_group_message_mentions_bot(server: BotApiServer) -> None:
    sent = server.send_text(-100, "hey @test_news_bot what's new?", chat_type="supergroup",
                            user_id=7, username="alice")
    assert sent["chat"]["type"] == "supergroup" and sent["from"]["username"] == "alice"
    update = with_bot(server, lambda bot: bot.get_updates())[0]
    [mention] = update.message.entities
    assert mention.type == "mention" and update.message.parse_entity(mention) == "@test_news_bot"


def test_edit_message(server: BotApiServer) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("More", callback_data="more:1")]])

    async def main(bot: Bot) -> None:
        sent = await bot.send_message(CHAT, "Searching…", reply_markup=keyboard)
        edited = await bot.edit_message_text("<b>Answer</b>", CHAT, sent.message_id,
                                             parse_mode="HTML", reply_markup=keyboard)
        assert isinstance(edited, Message) and edited.text == "Answer"
        assert edited.reply_markup == keyboard and edited.edit_date is not None
        with pytest.raises(BadRequest, match="(?i)message is not modified"):
            await bot.edit_message_text("<b>Answer</b>", CHAT, sent.message_id,
                                        parse_mode="HTML", reply_markup=keyboard)
        # Same text without reply_markup is a change: Telegram drops the keyboard.
        dropped = await bot.edit_message_text("<b>Answer</b>", CHAT, sent.message_id,
                                              parse_mode="HTML")
        assert dropped.reply_markup is None
        restored = await bot.edit_message_reply_markup(CHAT, sent.message_id, reply_markup=keyboard)
        assert restored.reply_markup == keyboard
        with pytest.raises(BadRequest, match="(?i)message to edit not found"):
            await bot.edit_message_text("x", CHAT, 999)
        assert await bot.delete_message(CHAT, sent.message_id) is True
        with pytest.raises(BadRequest, match="(?i)message to delete not found"):
            await bot.delete_message(CHAT, sent.message_id)

    with_bot(server, main)
    [first] = server.wait_for_messages(CHAT, timeout=1)
    assert first["text"] == "Answer" and first["deleted"] and first["edit_count"] == 3
    assert first["html"] == "<b>Answer</b>"
    assert server.wait_for_edit(CHAT, first["message_id"], timeout=1)["edit_count"] == 3
    assert server.messages(CHAT) == []


def test_wait_for_edit_blocks_until_edited(server: BotApiServer) -> None:
    message = with_bot(server, lambda bot: bot.send_message(CHAT, "Thinking"))
    with pytest.raises(TimeoutError, match="Thinking"):
        server.wait_for_edit(CHAT, message.message_id, timeout=0.2)
    editor = threading.Timer(0.2, lambda: with_bot(
        server, lambda bot: bot.edit_message_text("Done", CHAT, message.message_id)))
    editor.start()
    try:
        assert server.wait_for_edit(CHAT, message.message_id, timeout=10)["text"] == "Done"
    finally:
        editor.join()


def test_keyboard_validation(server: BotApiServer) -> None:
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d" * 65)]])
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        with_bot(server, lambda bot: bot.send_message(CHAT, "hi", reply_markup=too_long))
    multibyte = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):  # 66 bytes
        with_bot(server, lambda bot: bot.send_message(CHAT, "hi", reply_markup=multibyte))
    fits = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d" * 64)]])
    sent = with_bot(server, lambda bot: bot.send_message(CHAT, "hi", reply_markup=fits))
    assert sent.reply_markup == fits


# PTB 22 warns that RetryAfter.retry_after will become a timedelta.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_rate_limit_injection(server: BotApiServer) -> None:
    server.fail_next("sendMessage", status=429, retry_after=3)

    async def main(bot: Bot) -> None:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(CHAT, "hello")
        assert retry_seconds(caught.value) == 3
        await bot.send_message(CHAT, "hello")

    with_bot(server, main)
    assert len(server.calls_of("sendMessage")) == 2
    assert [m["text"] for m in server.messages(CHAT)] == ["hello"]


@pytest.mark.parametrize("status", [500, 502])
def test_server_error_injection(server: BotApiServer, status: int) -> None:
    server.fail_next("getMe", status=status, count=2)

    async def main() -> None:
        bot = make_bot(server)
        for _ in range(2):
            with pytest.raises(NetworkError):
                await bot.get_me()
        assert (await bot.get_me()).username == "test_news_bot"

    asyncio.run(main())


def test_delay_injection(server: BotApiServer) -> None:
    server.set_delay("sendChatAction", 0.5)

    async def main(bot: Bot) -> float:
        started = time.monotonic()
        assert await bot.send_chat_action(CHAT, "typing") is True
        with pytest.raises(BadRequest, match="(?i)wrong parameter action"):
            await bot.send_chat_action(CHAT, "dancing")
        return time.monotonic() - started

    assert with_bot(server, main) >= 1.0
    assert server.chat_actions(CHAT) == ["typing"]


def test_file_round_trip(server: BotApiServer) -> None:
    payload = bytes(range(256)) + b"\r\n--boundary\r\n" + "ünïcode".encode()

    async def main(bot: Bot) -> None:
        sent = await bot.send_document(CHAT, InputFile(payload, filename="report.bin"),
                                       caption="<i>weekly</i> report", parse_mode="HTML")
        assert sent.document.file_name == "report.bin" and sent.document.file_size == len(payload)
        assert sent.caption == "weekly report" and sent.caption_entities[0].type == "italic"
        file = await bot.get_file(sent.document.file_id)
        assert bytes(await file.download_as_bytearray()) == payload
        with pytest.raises(BadRequest, match="(?i)invalid file_id"):
            await bot.get_file("nope")

        server.send_document(CHAT, "news.txt", b"user upload", "text/plain", caption="read this")
        [update] = await bot.get_updates()
        document = update.message.document
        assert update.message.caption == "read this" and document.mime_type == "text/plain"
        user_file = await bot.get_file(document.file_id)
        assert bytes(await user_file.download_as_bytearray()) == b"user upload"

    with_bot(server, main)
    [stored] = server.messages(CHAT)
    assert stored["document"]["file_name"] == "report.bin" and stored["text"] == "weekly report"


def test_callback_button_press(server: BotApiServer) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Sources", callback_data="src:7")]])

    async def main(bot: Bot) -> None:
        sent = await bot.send_message(CHAT, "Answer", reply_markup=keyboard)
        with pytest.raises(ValueError, match="no button"):
            server.press_button(CHAT, sent.message_id, "other")
        query_id = server.press_button(CHAT, sent.message_id, "src:7")
        status, answer = raw_call(server, f"/bot{server.token}/getUpdates")
        assert status == 200
        update = Update.de_json(answer["result"][0], bot)
        query = update.callback_query
        assert query.id == query_id and query.data == "src:7" and query.chat_instance
        assert query.message.message_id == sent.message_id and query.from_user.id == CHAT
        assert query.message.reply_markup == keyboard
        assert await query.answer("Loading sources") is True
        with pytest.raises(BadRequest, match="(?i)query ID is invalid"):
            await bot.answer_callback_query("123")

    with_bot(server, main)
    [answered] = server.answered_callbacks
    assert answered["text"] == "Loading sources" and answered["show_alert"] is False


def test_commands(server: BotApiServer) -> None:
    commands = [BotCommand("start", "Start"), BotCommand("ask", "Ask about the news")]

    async def main(bot: Bot) -> None:
        scope = BotCommandScopeAllPrivateChats()
        assert await bot.set_my_commands(commands, scope=scope)
        assert await bot.set_my_commands(commands[:1], language_code="de")
        assert list(await bot.get_my_commands(scope=scope)) == commands
        assert await bot.get_my_commands() == ()
        with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
            await bot.set_my_commands([BotCommand("Start", "uppercase is invalid")])
        assert server.commands["all_private_chats"][1] == {
            "command": "ask", "description": "Ask about the news"}
        assert server.commands["default|de"][0]["command"] == "start"
        assert await bot.delete_my_commands(scope=scope)

    with_bot(server, main)
    assert list(server.commands) == ["default|de"]


def test_webhook_and_misc_methods(server: BotApiServer) -> None:
    server.send_text(CHAT, "queued")

    async def main(bot: Bot) -> None:
        with pytest.raises(BadRequest, match="(?i)only delivers to loopback"):
            await bot.set_webhook("https://example.com/hook")  # the emulator never posts off this machine
        hook = "http://127.0.0.1:9/hook"  # nothing listens there: the update stays queued
        assert await bot.set_webhook(hook)
        assert (await bot.get_webhook_info()).url == hook
        assert (await bot.get_webhook_info()).pending_update_count == 1
        with pytest.raises(Conflict):
            await bot.get_updates()
        assert await bot.delete_webhook(drop_pending_updates=True)
        info = await bot.get_webhook_info()
        assert info.url == "" and info.pending_update_count == 0
        assert await bot.close() is True and await bot.log_out() is True

    with_bot(server, main)


def test_replies_and_wait_for_messages(server: BotApiServer) -> None:
    question = server.send_text(CHAT, "What happened today?")

    async def main(bot: Bot) -> None:
        reply = await bot.send_message(CHAT, "one", reply_to_message_id=question["message_id"])
        assert reply.reply_to_message.text == "What happened today?"
        with pytest.raises(BadRequest, match="(?i)replied not found"):
            await bot.send_message(CHAT, "x", reply_to_message_id=999)
        await bot.send_message(CHAT, "two")
        await bot.send_message(CHAT + 1, "elsewhere")

    with pytest.raises(TimeoutError, match=f"chat {CHAT}"):
        server.wait_for_messages(CHAT, timeout=0.1)
    with_bot(server, main)
    assert [m["text"] for m in server.wait_for_messages(CHAT, count=2, timeout=1)] == ["one", "two"]
    with pytest.raises(TimeoutError, match="(?i)replied not found"):  # recent errors are reported
        server.wait_for_messages(CHAT, timeout=0.1)
    matching = server.wait_for_messages(CHAT + 1, timeout=1,
                                        predicate=lambda m: "else" in m["text"])
    assert [m["text"] for m in matching] == ["elsewhere"]
    assert server.wait_for_call("getMe", timeout=1) == {}


def test_stop_releases_long_polls() -> None:
    srv = BotApiServer(max_poll_timeout=60).start()
    results: list[tuple[int, dict[str, Any]]] = []
    poller = threading.Thread(target=lambda: results.append(
        raw_call(srv, f"/bot{srv.token}/getUpdates", b'{"timeout": 60}')))
    try:
        poller.start()
        srv.wait_for_call("getUpdates", timeout=5)
        started = time.monotonic()
    finally:
        srv.stop()
        poller.join(timeout=10)
    assert time.monotonic() - started < 3
    assert not poller.is_alive() and results == [(200, {"ok": True, "result": []})]


def test_ptb_application_polling(server: BotApiServer) -> None:
    """PTB's own polling loop, handlers and reply helpers work against the emulator."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Again", callback_data="again")]])
        await update.effective_message.reply_html("<b>Welcome</b>", reply_markup=keyboard)

    async def again(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.callback_query.answer()
        await update.callback_query.edit_message_text("Pressed")

    async def main() -> None:
        app = (ApplicationBuilder().token(server.token).base_url(server.api_url)
               .base_file_url(server.file_url).build())
        app.add_handler(CommandHandler("start", start))
        app.add_handler(CallbackQueryHandler(again, pattern="^again$"))
        async with app:
            await app.start()
            await app.updater.start_polling(timeout=1)
            try:
                server.send_text(CHAT, "/start")
                [welcome] = await asyncio.to_thread(server.wait_for_messages, CHAT, 1, 10)
                assert welcome["text"] == "Welcome"
                server.press_button(CHAT, welcome["message_id"], "again")
                edited = await asyncio.to_thread(
                    server.wait_for_edit, CHAT, welcome["message_id"], 10)
                assert edited["text"] == "Pressed" and edited["reply_markup"] is None
            finally:
                await app.updater.stop()
                await app.stop()

    asyncio.run(main())
    assert len(server.answered_callbacks) == 1 and server.pending_update_count == 0


def test_expandable_quotes_reach_ptb_as_entities(server: BotApiServer) -> None:
    html = "Lead\n<blockquote expandable><b>1.</b> A &amp; B</blockquote>"
    message = with_bot(server, lambda bot: bot.send_message(CHAT, html, parse_mode=ParseMode.HTML))
    assert message.text == "Lead\n1. A & B"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [
        ("expandable_blockquote", 5, 8), ("bold", 5, 2)]
    with pytest.raises(BadRequest, match="can't contain another blockquote"):
        with_bot(server, lambda bot: bot.send_message(
            CHAT, "<blockquote>a<blockquote expandable>b</blockquote></blockquote>", parse_mode=ParseMode.HTML))


def _inline_article(result_id: str, text: str, parse_mode: str | None = ParseMode.HTML) -> dict[str, Any]:
    content: dict[str, Any] = {"message_text": text}
    if parse_mode:
        content["parse_mode"] = parse_mode
    return {"type": "article", "id": result_id, "title": "Title", "input_message_content": content}


def _answer_inline(server: BotApiServer, query_id: str, results: list[dict[str, Any]]) -> tuple[int, dict]:
    body = json.dumps({"inline_query_id": query_id, "results": results, "cache_time": 30}).encode()
    return raw_call(server, f"/bot{server.token}/answerInlineQuery", body)


def test_inline_queries_need_inline_mode_and_are_answered_once(server: BotApiServer) -> None:
    with pytest.raises(ValueError, match="inline mode is off"):
        server.send_inline_query(7, "who won?")
    server.enable_inline_mode()
    assert with_bot(server, lambda bot: bot.get_me()).supports_inline_queries is True
    query_id = server.send_inline_query(7, "who won?", chat_type="group")
    [update] = raw_call(server, f"/bot{server.token}/getUpdates", b"{}")[1]["result"]
    assert update["inline_query"]["query"] == "who won?" and update["inline_query"]["from"]["id"] == 7
    assert update["inline_query"]["chat_type"] == "group"

    status, answer = _answer_inline(server, query_id, [
        _inline_article("1", '<a href="https://a.test">Title</a>\n<blockquote expandable><b>It</b> won.</blockquote>')])
    assert status == 200 and answer["result"] is True
    recorded = server.wait_for_inline_answer(query_id, timeout=1)
    [result] = recorded["results"]
    assert result["text"] == "Title\nIt won." and recorded["cache_time"] == 30 and recorded["is_personal"] is False
    assert [e["type"] for e in result["entities"]] == ["text_link", "expandable_blockquote", "bold"]
    assert _answer_inline(server, query_id, [])[1]["description"].endswith("query ID is invalid")  # only once
    assert _answer_inline(server, "123", [])[0] == 400


@pytest.mark.parametrize(("results", "error"), [
    ([_inline_article("1", "a"), _inline_article("1", "b")], "RESULT_ID_DUPLICATE"),
    ([_inline_article("", "a")], "RESULT_ID_INVALID"),
    ([_inline_article("x" * 65, "a")], "RESULT_ID_INVALID"),
    ([{**_inline_article("1", "a"), "title": " "}], "RESULT_TITLE_EMPTY"),
    ([{**_inline_article("1", "a"), "type": "photo"}], "RESULT_TYPE_INVALID"),
    ([_inline_article("1", "<blockquote>unclosed")], "can't parse entities"),
    ([_inline_article("1", "a" * 4097)], "MESSAGE_TOO_LONG"),
    ([_inline_article(str(i), "a") for i in range(51)], "RESULTS_TOO_MUCH"),
])
def test_inline_answers_are_checked(server: BotApiServer, results: list[dict[str, Any]], error: str) -> None:
    server.enable_inline_mode()
    query_id = server.send_inline_query(7, "query")
    status, answer = _answer_inline(server, query_id, results)
    assert status == 400 and error in answer["description"]
    assert server.inline_answers == []
    assert _answer_inline(server, query_id, [_inline_article("1", "fine")])[0] == 200  # still answerable


def test_updates_left_out_of_allowed_updates_are_never_queued(server: BotApiServer) -> None:
    server.enable_inline_mode()
    raw_call(server, f"/bot{server.token}/getUpdates",
             json.dumps({"allowed_updates": ["message", "callback_query"]}).encode())
    server.send_inline_query(7, "not wanted")
    server.send_text(CHAT, "wanted")
    updates = raw_call(server, f"/bot{server.token}/getUpdates", b"{}")[1]["result"]
    assert [list(u)[1] for u in updates] == ["message"]
    raw_call(server, f"/bot{server.token}/getUpdates",
             json.dumps({"offset": updates[-1]["update_id"] + 1, "allowed_updates": []}).encode())
    server.send_inline_query(7, "wanted now")  # an empty list: the default kinds again
    updates = raw_call(server, f"/bot{server.token}/getUpdates", b"{}")[1]["result"]
    assert [u["inline_query"]["query"] for u in updates] == ["wanted now"]


def test_ptb_inline_query_handler_answers_through_the_emulator(server: BotApiServer) -> None:
    from telegram import InlineQueryResultArticle, InputTextMessageContent
    from telegram.ext import InlineQueryHandler

    async def on_inline(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        content = InputTextMessageContent("<b>Answer</b> to " + update.inline_query.query, parse_mode="HTML")
        await update.inline_query.answer([InlineQueryResultArticle("r1", "A title", content, description="d")],
                                         cache_time=30, is_personal=False)

    async def main() -> dict[str, Any]:
        app = (ApplicationBuilder().token(server.token).base_url(server.api_url)
               .base_file_url(server.file_url).build())
        app.add_handler(InlineQueryHandler(on_inline))
        async with app:
            await app.start()
            await app.updater.start_polling(timeout=1, allowed_updates=[Update.INLINE_QUERY])
            try:
                query_id = server.send_inline_query(9, "the vote")
                return await asyncio.to_thread(server.wait_for_inline_answer, query_id, 10)
            finally:
                await app.updater.stop()
                await app.stop()

    server.enable_inline_mode()
    answer = asyncio.run(main())
    [result] = answer["results"]
    assert result["title"] == "A title" and result["description"] == "d" and result["text"] == "Answer to the vote"
    assert result["entities"] == [{"type": "bold", "offset": 0, "length": 6}]
    assert answer["cache_time"] == 30 and answer["is_personal"] is False


def test_a_late_inline_answer_is_refused(server: BotApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.botapi import server as emulator

    monkeypatch.setattr(emulator, "INLINE_QUERY_SECONDS", 0.2)
    server.enable_inline_mode()
    query_id = server.send_inline_query(7, "slow")
    time.sleep(0.3)
    status, answer = _answer_inline(server, query_id, [_inline_article("1", "late")])
    assert status == 400 and "response timeout expired" in answer["description"]
