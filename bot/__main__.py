"""python -m bot: the Telegram bot, or with --console (or without a token) a local chat in the terminal."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bot.console import CONSOLE_USER_ID, Console
from bot.logs import setup_logging
from bot.service import ChatService
from index.config import Settings, load_settings
from index.errors import ConfigError, LibraryBusy, LibraryUnavailable
from index.library import Library
from index.samples import sample_paths

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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings: Settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    token = settings.bot_token()
    console = args.console or token is None
    setup_logging(logging.INFO if args.verbose or not console else logging.WARNING, [token or ""])
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
        from bot.app import run

        log.info("library: %d articles in %s", library.count_articles(), library.location)
        run(settings, token, ChatService(library, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
