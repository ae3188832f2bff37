"""The one retry policy for calls to the config API."""

from __future__ import annotations

import logging
import math

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from dagfleet.fleet.errors import ConfigApiError

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 60.0


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ConfigApiError) and exc.retryable


class wait_retry_after_or(wait_base):
    """Honor the server's ``Retry-After`` (capped), else fall back to ``fallback``."""

    def __init__(self, fallback: wait_base, cap: float = MAX_RETRY_AFTER) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        after = exc.retry_after if isinstance(exc, ConfigApiError) else None
        if after is not None and math.isfinite(after):  # NaN or infinity: the backoff
            return min(max(after, 0.0), self.cap)
        return self.fallback(retry_state)


def _before_sleep(retry_state: RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
    log.warning("config API: %s; retrying in %.1fs (attempt %d)", exc, wait, retry_state.attempt_number)


def retry_policy(
    attempts: int = 4,
    *,
    initial: float = 0.5,
    maximum: float = 10.0,
    deadline: float | None = None,
) -> Retrying:
    """Retry connection errors, timeouts, 5xx and 429 with jittered exponential backoff.

    ``attempts=1`` means a single try (what the DAG uses at parse time); ``deadline`` bounds the
    total time spent, sleeps included. Tests pass ``initial=0`` to retry without sleeping.
    """
    stop: stop_base = stop_after_attempt(attempts)
    if deadline is not None:
        stop = stop | stop_after_delay(deadline)
    return Retrying(
        retry=retry_if_exception(_is_retryable),
        wait=wait_retry_after_or(wait_random_exponential(multiplier=initial, max=maximum)),
        stop=stop,
        reraise=True,
        before_sleep=_before_sleep,
    )
