"""The bot token never reaches stdout or stderr (issue 18, defect 1): a start-up the Bot API refuses ends with
one clear line, and every other way out of the process (uncaught exceptions in any thread, warnings, loggers
with their own handlers, plain prints) goes through the redaction."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.bot_runner import PROJECT, free_port
from tests.support.botapi import BotApiServer

# A token of Telegram's form; URL-encoding changes its colon, so that its encoded form is another string.
TOKEN = "424242:AAHsecretTOKENvalue_with-dash0123456789"
SECRET_FORMS = (TOKEN, quote(TOKEN, safe=""), quote(TOKEN, safe="").lower(), TOKEN.split(":", 1)[1],
                quote(TOKEN.split(":", 1)[1], safe=""))


def start_bot(tmp_path: Path, base_url: str, token: str = TOKEN) -> subprocess.CompletedProcess:
    """``python -m bot --verbose`` against ``base_url`` until it exits, stdout and stderr captured apart."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_BASE_URL": base_url,
           "NEWSBOT_DATA_DIR": str(tmp_path / "data"), "NEWSBOT_BOT_POLL_TIMEOUT": "1"}
    return subprocess.run([sys.executable, "-m", "bot", "--verbose"], cwd=PROJECT, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300)


def assert_no_secret(output: str) -> None:
    for form in SECRET_FORMS:
        assert form not in output, f"{form!r} was written out:\n{output}"


@pytest.mark.parametrize("status, expected", [
    (401, "error: the Bot API answered 401 Unauthorized: check TELEGRAM_BOT_TOKEN"),
    (404, "error: the Bot API answered 404 Not Found: check TELEGRAM_BOT_TOKEN"),
])
def test_a_refused_token_ends_in_one_clear_line_without_the_token(tmp_path: Path, status: int,
                                                                   expected: str) -> None:
    # 401: the emulator knows another token (as Telegram answers a well-formed but wrong one); 404: the
    # answer Telegram gives to a malformed token.
    with BotApiServer(token=TOKEN if status == 404 else "777:another-token-entirely") as server:
        if status == 404:
            server.fail_next("getMe", status=404, count=100)
        result = start_bot(tmp_path, server.base_url)
        if status == 404:  # (the emulator records only the calls made with its own token)
            assert server.calls_of("getMe"), "the bot never asked the Bot API"
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert expected in result.stderr, output
    assert "Traceback" not in output and "rejected by the server" not in output, output
    assert_no_secret(output)


def test_an_unreachable_bot_api_ends_in_one_clear_line(tmp_path: Path) -> None:
    base_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = start_bot(tmp_path, base_url)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"error: cannot reach the Bot API at {base_url}" in result.stderr, output
    assert "Traceback" not in output, output
    assert_no_secret(output)


REDACTION_SCRIPT = textwrap.dedent("""
    import logging, sys, threading, warnings
    from urllib.parse import quote
    from bot.logs import setup_logging

    token = sys.argv[1]
    setup_logging(logging.INFO, [token])
    own = logging.getLogger("library.with.own.handler")  # as some libraries set themselves up
    own.addHandler(logging.StreamHandler(sys.stderr))
    own.propagate = False
    own.warning("calling https://api.example/bot%s/getMe", token)
    logging.getLogger("httpx").warning("HTTP Request: POST https://api.example/bot%s/getMe", quote(token, safe=""))
    try:
        raise ValueError(f"request for {token} failed")
    except ValueError:
        logging.getLogger("ptb").exception("with a traceback")
    warnings.warn(f"deprecated call with {token}")
    print(f"printed: {token}")
    print(f"half a line: {token[:10]}", end="")
    print(f"{token[10:]} and the rest", flush=True)
    def fail():
        raise RuntimeError(f"thread failed with {token}")
    thread = threading.Thread(target=fail, name="worker")
    thread.start()
    thread.join()
    raise SystemError(f"uncaught: The token `{token}` was rejected by the server.")
""")


def test_every_way_out_of_the_process_is_redacted() -> None:
    result = subprocess.run([sys.executable, "-c", REDACTION_SCRIPT, TOKEN], cwd=PROJECT, capture_output=True,
                            text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert_no_secret(output)
    for seen in ("calling https://api.example/bot<token>/getMe", "POST https://api.example/bot<token>/getMe",
                 "request for <token> failed", "deprecated call with <token>", "printed: <token>",
                 "half a line: <token> and the rest", "Exception in thread worker", "thread failed with <token>",
                 "uncaught: The token `<token>` was rejected"):
        assert seen in output, f"{seen!r} missing from:\n{output}"
