"""Bounded retries for Bot API calls that failed before Telegram carried them out."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Coroutine

from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import AIORateLimiter

log = logging.getLogger(__name__)
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # seconds before each further try


class RetryingRateLimiter(AIORateLimiter):
    """PTB's rate limiter (which waits out 429 "retry after" answers) plus a few spaced retries of a
    call that met a server error (5xx) or a connection cut before any answer.

    A timeout is not retried: Telegram may have carried the call out (a message sent) and only the
    answer was lost, so a retry could send the reply twice; the failure is logged instead.
    """

    def __init__(self, max_retries: int = 5, delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        super().__init__(max_retries=max_retries)
        self.delays = delays

    async def process_request(self, callback: Callable[..., Coroutine[Any, Any, Any]], args: Any,
                              kwargs: dict[str, Any], endpoint: str, data: dict[str, Any],
                              rate_limit_args: int | None) -> Any:
        for attempt, delay in enumerate((*self.delays, None)):
            try:
                return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)
            except (BadRequest, TimedOut):
                raise
            except NetworkError as exc:
                if endpoint == "getUpdates":  # the updater retries polling by itself
                    raise
                if delay is None:
                    log.error("%s failed after %d tries: %s", endpoint, attempt + 1, exc)
                    raise
                log.warning("%s failed (%s); trying again in %.1f s", endpoint, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")
