"""The bot's retry policy for Bot API calls (the end-to-end version is tests/test_bot_faults.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut

from bot.retries import RetryingRateLimiter


class FlakyCall:
    """Fails with the given errors one after another, then answers True."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return True


def run(call: FlakyCall, endpoint: str = "sendMessage") -> bool:
    async def go() -> bool:
        limiter = RetryingRateLimiter(delays=(0.01, 0.01, 0.01))
        await limiter.initialize()
        try:
            return await limiter.process_request(call, (), {}, endpoint, {"chat_id": 5}, None)
        finally:
            await limiter.shutdown()

    return asyncio.run(go())


def test_server_errors_and_cut_connections_are_retried_a_few_times() -> None:
    call = FlakyCall(NetworkError("Bad Gateway"), NetworkError("httpx.RemoteProtocolError: disconnected"))
    assert run(call) is True and call.calls == 3
    call = FlakyCall(RetryAfter(timedelta(0)), NetworkError("Bad Gateway"))  # 429s are waited out by PTB's limiter
    assert run(call) is True and call.calls == 3


def test_retries_are_bounded_and_the_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    call = FlakyCall(*[NetworkError("Bad Gateway")] * 10)
    with pytest.raises(NetworkError):
        run(call)
    assert call.calls == 4  # the first try and three retries
    assert "sendMessage failed after 4 tries" in caplog.text


@pytest.mark.parametrize("error", [TimedOut("read timeout"), BadRequest("Message is too long")])
def test_timeouts_and_bad_requests_are_not_retried(error: Exception) -> None:
    call = FlakyCall(error)
    with pytest.raises(type(error)):
        run(call)
    assert call.calls == 1  # a timed-out send may have been delivered: a retry could duplicate it


def test_polling_errors_are_left_to_the_updater() -> None:
    call = FlakyCall(NetworkError("Bad Gateway"))
    with pytest.raises(NetworkError):
        run(call, endpoint="getUpdates")
    assert call.calls == 1
