"""Delivery of treatment actions to a webhook over HTTP, at least once.

Every request carries ``Idempotency-Key: <action_id>``: a redelivered event yields the same
action_id, and a retry after a lost response repeats the key, so the receiver de-duplicates and
at-least-once delivery does not send a customer the same message twice. Requests are paced by a
token bucket (retries included: they load the receiver like any request) and run a few at a
time. Redirects are not followed, so the auth headers never go to a host nobody configured.
"""

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final

import aiohttp
from yarl import URL

from schemas.exceptions import PropensityError
from schemas.outputs import DLQ_HEADER_REASON

from .delivery_pacing import Clock, Sleep, TokenBucket, backoff_delay, retry_after_seconds

log = logging.getLogger(__name__)

DLQ_HEADER_WEBHOOK_STATUS: Final = "dlq.webhook.status"
DLQ_HEADER_WEBHOOK_ATTEMPTS: Final = "dlq.webhook.attempts"
DLQ_HEADER_WEBHOOK_URL: Final = "dlq.webhook.url"
BACKOFF_CAP_SECONDS: Final = 30.0
REASON_TIMEOUT: Final = "timeout"
REASON_CONNECTION_ERROR: Final = "connection_error"
REASON_INVALID_ACTION_ID: Final = "invalid_action_id"  # not sent: unusable as Idempotency-Key


class WebhookError(PropensityError):
    """The sender was misconfigured or used before ``start()``."""


@dataclass(frozen=True)
class DeliveryFailure:
    """A record that was not delivered; the caller dead-letters it.

    ``status`` is the last HTTP status (None when no response came: timeout, connection
    error); ``reason`` is a short bounded code such as ``http_500`` or ``timeout``.
    """

    action_id: str
    body: bytes
    status: int | None
    reason: str
    attempts: int


@dataclass(frozen=True)
class WebhookCounts:
    """HTTP requests by outcome: ``ok`` (2xx), ``retried`` (failed, tried again), ``failed``
    (failed, given up). A record delivered on its third try counts 1 ok and 2 retried."""

    ok: int = 0
    retried: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _RequestOutcome:
    status: int | None
    reason: str  # "ok", "http_<status>", "timeout" or "connection_error"
    retry_after_seconds: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retriable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


def url_without_credentials(url: str) -> str:
    """``url`` without user, password, query or fragment: safe to log and to put in headers
    (a query string often carries an API key)."""
    return str(URL(url).with_user(None).with_query(None).with_fragment(None))


def _parsed_http_url(url: str) -> URL:
    try:
        parsed = URL(url)
        usable = parsed.scheme in ("http", "https") and bool(parsed.host)
        shown = url_without_credentials(url)
    except ValueError:  # yarl: an unreadable port, host or escape
        usable, shown = False, "(unparseable)"
    if not usable:
        raise WebhookError(f"webhook url must be http(s)://host[:port]/path, got {shown}")
    return parsed


def _usable_as_header(value: str) -> bool:
    return bool(value) and value.isascii() and value.isprintable()


class WebhookSender:
    """POSTs action records to one URL: retries with backoff, a rate limit, a concurrency cap.

    ``start()`` opens the one HTTP session (it needs a running event loop); ``stop()`` closes it.
    ``clock``, ``sleep`` and ``rng`` are the seams tests use to run without real waiting;
    ``wall_clock`` (epoch seconds) reads Retry-After dates.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 5.0,
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
        rate_limit_per_second: float = 50.0,
        max_concurrency: int = 8,
        headers: Mapping[str, str] | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        wall_clock: Clock = time.time,
    ) -> None:
        parsed = _parsed_http_url(url)
        if (
            timeout_seconds <= 0
            or max_attempts < 1
            or backoff_seconds < 0
            or rate_limit_per_second < 0
            or max_concurrency < 1
        ):
            raise WebhookError(
                "webhook settings out of range: timeout_seconds > 0, max_attempts >= 1,"
                " backoff_seconds >= 0, rate_limit_per_second >= 0, max_concurrency >= 1"
            )
        if parsed.user is not None and any(h.lower() == "authorization" for h in headers or {}):
            raise WebhookError("webhook url credentials and an Authorization header: give one")
        self.url = url
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_concurrency = max_concurrency
        self._headers = dict(headers or {})  # may hold credentials: never logged
        self._bucket = TokenBucket(rate_limit_per_second, clock=clock, sleep=sleep)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._wall_clock = wall_clock
        self._session: aiohttp.ClientSession | None = None
        self._counts = WebhookCounts()

    def __repr__(self) -> str:
        return f"WebhookSender({url_without_credentials(self.url)!r})"

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                connector=aiohttp.TCPConnector(limit=self.max_concurrency),
            )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "WebhookSender":
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def take_counts(self) -> WebhookCounts:
        """Request counts since the last call (the caller adds them to its counters)."""
        counts, self._counts = self._counts, WebhookCounts()
        return counts

    async def deliver(self, records: Sequence[tuple[str, bytes]]) -> list[DeliveryFailure]:
        """POST each (action_id, JSON body); the records finally not delivered, in input order.

        A record takes at most ``max_attempts`` requests of ``timeout_seconds`` each plus the
        backoff between them (each at most 30 s), plus any wait for the rate limit.
        """
        session = self._session
        if session is None:
            raise WebhookError("WebhookSender.deliver() before start()")
        slots = asyncio.Semaphore(self.max_concurrency)
        results = await asyncio.gather(
            *(self._deliver_one(session, slots, action_id, body) for action_id, body in records)
        )
        failures = [failure for failure in results if failure is not None]
        if failures:
            first = failures[0]
            log.warning(
                "%d of %d webhook deliveries to %s failed (first: %s %s after %d attempts)",
                len(failures),
                len(records),
                url_without_credentials(self.url),
                first.action_id,
                first.reason,
                first.attempts,
            )
        return failures

    def dead_letter_headers(self, failure: DeliveryFailure) -> list[tuple[str, bytes]]:
        """Headers for the caller's dead-letter record of ``failure``; status is empty when
        no response came."""
        status = b"" if failure.status is None else str(failure.status).encode()
        return [
            (DLQ_HEADER_REASON, failure.reason.encode()),
            (DLQ_HEADER_WEBHOOK_STATUS, status),
            (DLQ_HEADER_WEBHOOK_ATTEMPTS, str(failure.attempts).encode()),
            (DLQ_HEADER_WEBHOOK_URL, url_without_credentials(self.url).encode()),
        ]

    async def _deliver_one(
        self, session: aiohttp.ClientSession, slots: asyncio.Semaphore, action_id: str, body: bytes
    ) -> DeliveryFailure | None:
        if not _usable_as_header(action_id):
            self._count(failed=1)
            return DeliveryFailure(action_id, body, None, REASON_INVALID_ACTION_ID, 0)
        async with slots:
            for attempt in range(1, self.max_attempts + 1):
                outcome = await self._request(session, action_id, body)
                if outcome.delivered:
                    self._count(ok=1)
                    return None
                if not outcome.retriable or attempt == self.max_attempts:
                    self._count(failed=1)
                    return DeliveryFailure(action_id, body, outcome.status, outcome.reason, attempt)
                self._count(retried=1)
                await self._sleep(self._retry_delay(attempt, outcome))
        raise AssertionError("unreachable: the last attempt returns")

    def _retry_delay(self, attempt: int, outcome: _RequestOutcome) -> float:
        if outcome.retry_after_seconds is not None:
            return min(BACKOFF_CAP_SECONDS, outcome.retry_after_seconds)
        return backoff_delay(attempt, self.backoff_seconds, BACKOFF_CAP_SECONDS, self._rng)

    async def _request(
        self, session: aiohttp.ClientSession, action_id: str, body: bytes
    ) -> _RequestOutcome:
        await self._bucket.acquire()
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Idempotency-Key": action_id,
        }
        try:
            async with session.post(
                self.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()  # drain: the connection goes back to the pool
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except TimeoutError:  # aiohttp's timeouts are asyncio.TimeoutError, i.e. TimeoutError
            return _RequestOutcome(None, REASON_TIMEOUT)
        except aiohttp.ClientError:
            return _RequestOutcome(None, REASON_CONNECTION_ERROR)
        if 200 <= status < 300:
            return _RequestOutcome(status, "ok")
        return _RequestOutcome(
            status, f"http_{status}", retry_after_seconds(retry_after, self._wall_clock())
        )

    def _count(self, ok: int = 0, retried: int = 0, failed: int = 0) -> None:
        counts = self._counts
        self._counts = WebhookCounts(
            counts.ok + ok, counts.retried + retried, counts.failed + failed
        )
