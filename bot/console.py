"""A local chat in the terminal over the same ChatService the Telegram handlers use."""

from __future__ import annotations

import asyncio
import shutil
import sys
import textwrap
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, TextIO

from bot import texts
from bot.handlers.insights import insights_reply
from bot.service import Button, ChatService, Reply, add_summary_html, parse_add_arguments
from index.errors import IngestError
from index.ingest.files import read_article_file
from index.inputs import InvalidNumber, parse_number

CONSOLE_CHAT_ID = 0
CONSOLE_USER_ID = 0  # the person at the terminal is the library's admin
_BOLD, _RESET = "\033[1m", "\033[0m"
_QUOTE_BAR = "  │ "


class _TerminalText(HTMLParser):
    """Telegram HTML to terminal text: bold kept (as ANSI when colour is on), links shown with their URL,
    quotes (the passages) wrapped and indented under a bar."""

    def __init__(self, colour: bool, width: int) -> None:
        super().__init__(convert_charrefs=True)
        self.colour = colour
        self.width = width
        self.parts: list[str] = []
        self._links: list[str] = []
        self._quote_start: int | None = None  # where in ``parts`` the open quote's text begins

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "b" and self.colour:
            self.parts.append(_BOLD)
        elif tag == "a":
            self._links.append(dict(attrs).get("href") or "")
        elif tag == "blockquote":
            self._quote_start = len(self.parts)

    def handle_endtag(self, tag: str) -> None:
        if tag == "b" and self.colour:
            self.parts.append(_RESET)
        elif tag == "a" and self._links:
            href = self._links.pop()
            if href:
                self.parts.append(f" <{href}>")
        elif tag == "blockquote" and self._quote_start is not None:
            quote = "".join(self.parts[self._quote_start:])
            self.parts[self._quote_start:] = [indented(quote, self.width), "\n"]  # a blank line after it
            self._quote_start = None

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def indented(quote: str, width: int) -> str:
    """A quote's paragraphs wrapped to ``width`` columns, each line behind the quote bar (which is never
    bold: bold going on past a line's end is closed there and opened again after the next bar)."""
    room = max(20, width - len(_QUOTE_BAR))
    shown, bold = [], False
    for paragraph in quote.split("\n"):
        for line in textwrap.wrap(paragraph, room) or [""]:
            opened = bold
            if _BOLD in line or _RESET in line:
                bold = line.rfind(_BOLD) > line.rfind(_RESET)
            shown.append(_QUOTE_BAR + (_BOLD if opened else "") + line + (_RESET if bold else ""))
    return "\n".join(shown)


def to_terminal(html: str, colour: bool, width: int | None = None) -> str:
    """Text for the terminal; quotes wrap at ``width`` columns (default: the terminal's, at most 100)."""
    parser = _TerminalText(colour, width or min(100, shutil.get_terminal_size((100, 24)).columns))
    parser.feed(html)
    parser.close()
    return "".join(parser.parts).rstrip("\n")


class Console:
    """Reads lines, answers them; buttons are shown numbered and pressed by typing their number."""

    def __init__(self, service: ChatService, out: TextIO = sys.stdout, colour: bool | None = None) -> None:
        self.service = service
        self.out = out
        self.colour = out.isatty() if colour is None else colour
        self._buttons: list[Button] = []

    def show(self, replies: list[Reply]) -> None:
        self._buttons = []
        for reply in replies:
            print(to_terminal(reply.html, self.colour), file=self.out)
            for row in reply.buttons:
                for button in row:
                    self._buttons.append(button)
        if self._buttons:
            labels = "  ".join(f"[{i}] {b.label}" for i, b in enumerate(self._buttons, 1))
            print(f"\n{labels}   {texts.CONSOLE_PRESS_HINT}", file=self.out)
        print(file=self.out)

    def handle(self, line: str) -> list[Reply] | None:
        """One line of input to replies; None means quit."""
        text = line.strip()
        service, user = self.service, CONSOLE_USER_ID
        if text in {"/quit", "/exit"}:
            return None
        button = self._numbered_button(text)
        if button is not None:
            return self.press(button)
        command, _, argument = text.partition(" ")
        commands: dict[str, Callable[[], list[Reply]]] = {
            "/start": lambda: [service.help(user)],
            "/help": lambda: [service.help(user)],
            "/new": lambda: [service.new_conversation(CONSOLE_CHAT_ID)],
            "/remove": lambda: [service.remove(user, argument)],
            "/list": lambda: [service.list_page(user, 0)],
            "/stats": lambda: [service.stats(user)],
            "/add": lambda: self.add(argument),
            "/file": lambda: self.add_file(argument),
            "/subscribe": lambda: [asyncio.run(service.subscribe(user, argument, "console"))],
            "/unsubscribe": lambda: [service.unsubscribe(user, argument)],
            "/feeds": lambda: [service.feed_list(user)],
            "/poll": lambda: [Reply(texts.console_polled(len(asyncio.run(service.poll_feeds()))))],
            "/insights": lambda: [insights_reply(service, user, argument)],
        }
        if command in commands:
            return commands[command]()
        if text.startswith("/"):
            return [Reply(texts.console_unknown_command(command))]
        return service.answer(CONSOLE_CHAT_ID, text)

    def _numbered_button(self, text: str) -> Button | None:
        """The button whose number was typed; None when the line is not one of the numbers shown."""
        try:
            return self._buttons[parse_number(text, "button number", 1, len(self._buttons)) - 1]
        except InvalidNumber:
            return None

    def press(self, button: Button) -> list[Reply]:
        kind, _, rest = button.data.partition(":")
        if kind == "more":
            token, _, page = rest.partition(":")
            return self.service.more(CONSOLE_CHAT_ID, token, int(page))
        if kind == "src":
            return [self.service.sources(CONSOLE_CHAT_ID, rest)]
        if kind == "list":
            return [self.service.list_page(CONSOLE_USER_ID, int(rest))]
        if kind == "vote":
            token, _, choice = rest.partition(":")
            outcome = self.service.activity.vote(CONSOLE_CHAT_ID, token, CONSOLE_USER_ID, up=choice == "u")
            return [Reply(escape(texts.vote_confirmation(outcome.status, outcome.up)))]
        return [Reply(texts.STALE_BUTTON)]

    def add(self, argument: str) -> list[Reply]:
        urls, text = parse_add_arguments(argument.replace("\\n", "\n"))
        if text is not None:
            return [self.service.add_text(CONSOLE_USER_ID, text, "console")]
        if not urls:
            return [Reply(texts.CONSOLE_ADD_USAGE)]
        async def add_all() -> list:
            return [result async for result in self.service.add_urls(CONSOLE_USER_ID, urls, "console")]

        return [Reply(add_summary_html(asyncio.run(add_all())))]

    def add_file(self, argument: str) -> list[Reply]:
        path = Path(argument.strip()).expanduser()
        if not argument.strip():
            return [Reply(texts.CONSOLE_FILE_USAGE)]
        try:  # regular files only, read no further than the size limit (not a device, pipe or huge file)
            data = read_article_file(path, self.service.settings.library.max_file_bytes)
        except IngestError as exc:
            return [Reply(f"⚠️ {escape(str(exc))}")]
        return [self.service.add_document(CONSOLE_USER_ID, data, path.name, "console")]

    def run(self, stdin: TextIO = sys.stdin) -> None:
        interactive = stdin.isatty()
        self.show([self.service.help(CONSOLE_USER_ID)])
        while True:
            if interactive:
                print("you> ", end="", file=self.out, flush=True)
            line = stdin.readline()
            if not line:
                break
            if not interactive and line.strip():
                print(f"you> {line.strip()}", file=self.out)
            replies = self.handle(line)
            if replies is None:
                break
            self.show(replies)

