"""Keeps the bot token out of everything the process writes: log records (whichever logger and handler
they go to), tracebacks of uncaught exceptions (in any thread), warnings, and stdout and stderr themselves.

The token appears in every Bot API URL (``.../bot<token>/getMe``), and python-telegram-bot puts it in
the message of the InvalidToken error it raises when the server refuses it at start-up."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
import warnings
from types import TracebackType
from typing import Callable, TextIO
from urllib.parse import quote, quote_plus

REDACTED = "<token>"
# The part of a token after "bot id:" is redacted on its own too (it holds the secret), when it is at
# least this long: a very short one would hide ordinary words.
MIN_SECRET_PART = 8
# A stream holds back an unfinished line (so that a token split between two writes is still found)
# up to this many characters.
MAX_PENDING_CHARS = 65_536


def secret_forms(secret: str) -> list[str]:
    """The ways a secret can be written out: as is, URL-encoded (either case of hex), and, for a bot
    token, its secret part alone; longest first, so that a longer form is replaced before its parts."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    forms |= {_lower_escapes(form) for form in forms}
    _, colon, secret_part = secret.partition(":")
    if colon and len(secret_part) >= MIN_SECRET_PART:
        forms |= {secret_part, quote(secret_part, safe="")}
    return sorted((form for form in forms if form), key=len, reverse=True)


def _lower_escapes(text: str) -> str:
    """``%3A`` written as ``%3a``: percent escapes are case-insensitive."""
    parts = text.split("%")
    return parts[0] + "".join("%" + part[:2].lower() + part[2:] for part in parts[1:])


class Redactor:
    """Replaces every form of the given secrets in a text."""

    def __init__(self, secrets: list[str]) -> None:
        forms = {form for secret in secrets if secret for form in secret_forms(secret)}
        self.forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self.forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def __bool__(self) -> bool:
        return bool(self.forms)


def redact_record(record: logging.LogRecord, redact: Redactor) -> None:
    """Format the record's message, exception and stack now, with the secrets replaced."""
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the format: keep what there is, as text
        message = f"{record.msg} {record.args}"
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactFilter(logging.Filter):
    """Replaces every form of the given secrets in the log records a handler writes."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redact:
            redact_record(record, self.redact)
        return True


class RedactingStream:
    """A text stream that writes to another with the secrets replaced, a whole line at a time."""

    def __init__(self, stream: TextIO, redact: Redactor) -> None:
        self.stream = stream
        self.redact = redact
        self._pending = ""
        self._lock = threading.RLock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            if "\n" in self._pending:
                ready, _, self._pending = self._pending.rpartition("\n")
                self.stream.write(self.redact(ready + "\n"))
            elif len(self._pending) > MAX_PENDING_CHARS:
                self._write_pending()
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            self._write_pending()
            self.stream.flush()

    def _write_pending(self) -> None:
        if self._pending:
            self.stream.write(self.redact(self._pending))
            self._pending = ""

    def __getattr__(self, name: str) -> object:  # encoding, isatty, fileno, ... of the wrapped stream
        return getattr(self.stream, name)


def _redacting_excepthook(redact: Redactor) -> Callable[[type[BaseException], BaseException,
                                                          TracebackType | None], None]:
    def excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(kind, error, tb))))
        sys.stderr.flush()

    return excepthook


def _redacting_thread_excepthook(redact: Redactor) -> Callable[[threading.ExceptHookArgs], None]:
    def excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "unknown"
        text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        sys.stderr.write(redact(f"Exception in thread {name}:\n{text}"))
        sys.stderr.flush()

    return excepthook


def install_redaction(secrets: list[str]) -> Redactor:
    """Route every way out of the process through the redaction of ``secrets``: stdout and stderr,
    uncaught exceptions in the main thread and in other threads, warnings, and every log record,
    whichever logger makes it (those with their own handlers and propagate=False included)."""
    redact = Redactor(secrets)
    if not redact:
        return redact
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream, redact))
    sys.excepthook = _redacting_excepthook(redact)
    threading.excepthook = _redacting_thread_excepthook(redact)
    logging.captureWarnings(True)  # warnings become records of the "py.warnings" logger
    warnings.showwarning = _redacting_showwarning(redact)
    make_record = logging.getLogRecordFactory()

    def redacted_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        redact_record(record, redact)
        return record

    logging.setLogRecordFactory(redacted_record)
    return redact


def _redacting_showwarning(redact: Redactor) -> Callable[..., None]:
    """warnings.showwarning through the logging capture (set up just before), with the text redacted."""
    show = warnings.showwarning

    def showwarning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    file: TextIO | None = None, line: str | None = None) -> None:
        show(redact(str(message)), category, filename, lineno, file, line)

    return showwarning


def setup_logging(level: int, secrets: list[str]) -> Redactor:
    """Log to stderr at ``level``, with ``secrets`` redacted from everything the process writes."""
    redact = install_redaction(secrets)  # first, so that the log handler writes to the redacting stderr
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact_filter = RedactFilter(secrets)
    for handler in _all_handlers():
        handler.addFilter(redact_filter)
    # httpx logs every request URL at INFO, and Bot API URLs contain the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return redact


def _all_handlers() -> list[logging.Handler]:
    """The handlers of the root logger and of every logger created so far."""
    loggers = [logging.getLogger()] + [logger for logger in logging.Logger.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger)]
    return [handler for logger in loggers for handler in logger.handlers]
