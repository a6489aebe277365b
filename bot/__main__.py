"""python -m bot: the Telegram bot, or with --console (or without a token) a local chat in the terminal."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot.console import CONSOLE_USER_ID, Console
from bot.logs import setup_logging
from bot.service import ChatService
from index.config import Settings, load_settings
from index.errors import ConfigError, LibraryBusy, LibraryUnavailable
from index.library import Library
from index.samples import sample_paths

if TYPE_CHECKING:  # python-telegram-bot is imported only when the bot talks to Telegram
    from telegram.error import TelegramError

log = logging.getLogger("bot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Answer questions about news articles.")
    parser.add_argument("--console", action="store_true", help="chat in the terminal instead of Telegram")
    parser.add_argument("--config", type=Path, help="config file (default: config.toml or $NEWSBOT_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def _add_samples_if_empty(library: Library) -> None:
    if library.count_articles() == 0:
        print("The library is empty: adding the project's sample articles…", file=sys.stderr)
        for result in library.add_sources([str(p) for p in sample_paths()], added_by="samples"):
            if not result.ok:
                print(f"  {result.source}: {result.message}", file=sys.stderr)


class LoopEndsInOneLine(logging.Filter):
    """PTB's network loop logs the error that ends it (a refused token, an unreachable Bot API at start-up)
    with its traceback, then raises it again; main() reports that error in one line, so the log keeps PTB's
    line without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from telegram.error import TelegramError

        if record.module == "networkloop" and record.exc_info and isinstance(record.exc_info[1], TelegramError):
            record.exc_info, record.exc_text = None, None
        return True


def startup_failure(error: "TelegramError", settings: Settings) -> str:
    """What went wrong when the bot could not start talking to the Bot API, for the person starting it."""
    from telegram.error import InvalidToken, NetworkError, TelegramError

    base_url = settings.bot.api_base_url
    if isinstance(error, InvalidToken):
        # PTB chains its own InvalidToken errors; the first one raised holds the server's description.
        described = error
        while isinstance(described.__cause__, TelegramError):
            described = described.__cause__
        description = described.message.strip()
        if description.casefold().startswith("unauthorized"):
            return f"the Bot API answered 401 Unauthorized: check {settings.bot.token_env}"
        if description.casefold().startswith("not found"):
            return f"the Bot API answered 404 Not Found: check {settings.bot.token_env} and the Bot API address " \
                   f"({base_url})"
        return f"the Bot API refused the token (“{description}”): check {settings.bot.token_env}"
    if isinstance(error, NetworkError):
        return f"cannot reach the Bot API at {base_url} ({error.message})"
    return f"the Bot API at {base_url} refused to start the bot: {error.message}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings: Settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    token = settings.bot_token()
    console = args.console or token is None
    redact = setup_logging(logging.INFO if args.verbose or not console else logging.WARNING, [token or ""])
    if console and not args.console:
        print(f"No Telegram token in ${settings.bot.token_env}: starting a local chat in the terminal instead.\n",
              file=sys.stderr)
    try:
        library = Library(settings)
    except (ConfigError, LibraryBusy, LibraryUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with library:
        if console:
            _add_samples_if_empty(library)
            console_settings = settings.replace("bot", admin_ids=(*settings.bot.admin_ids, CONSOLE_USER_ID))
            Console(ChatService(library, console_settings)).run()
            return 0
        from telegram.error import TelegramError

        from bot.app import run

        log.info("library: %d articles in %s", library.count_articles(), library.location)
        for handler in logging.getLogger().handlers:
            handler.addFilter(LoopEndsInOneLine())
        try:
            run(settings, token, ChatService(library, settings))
        except TelegramError as exc:  # the token refused, or no Bot API to talk to: one line, no traceback
            print(redact(f"error: {startup_failure(exc, settings)}"), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
