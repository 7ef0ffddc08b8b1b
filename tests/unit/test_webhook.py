"""Webhook delivery against a real aiohttp server on 127.0.0.1: retries, give-ups, pacing."""

import asyncio
import json
import logging
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from schemas.outputs import DLQ_HEADER_REASON
from streams.worker.actions.delivery_pacing import (
    TokenBucket,
    backoff_delay,
    retry_after_seconds,
)
from streams.worker.actions.webhook import (
    DLQ_HEADER_WEBHOOK_ATTEMPTS,
    DLQ_HEADER_WEBHOOK_STATUS,
    DLQ_HEADER_WEBHOOK_URL,
    DeliveryFailure,
    WebhookCounts,
    WebhookError,
    WebhookSender,
)

Respond = Callable[[int], Awaitable[web.StreamResponse]]


class FakeTime:
    """A clock that only sleeps move. Concurrent sleepers wait side by side: each sleep moves
    the clock to its own deadline (taken when it began), never back."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        deadline = self.now + seconds
        await asyncio.sleep(0)  # let other tasks take their turn at this same instant
        self.now = max(self.now, deadline)


class Receiver:
    """A webhook endpoint that records each request, answering with ``respond``."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.read()))
        return await self.respond(len(self.requests))


async def accept(_: int) -> web.StreamResponse:
    return web.Response(status=204)


def status_then_accept(status: int, times: int, headers: dict[str, str] | None = None) -> Respond:
    """Answer ``status`` (with ``headers``) to the first ``times`` requests, then 200."""

    async def respond(seen: int) -> web.StreamResponse:
        if seen <= times:
            return web.Response(status=status, headers=headers)
        return web.Response(status=200)

    return respond


Serve = Callable[[Receiver], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start receivers on free ports of 127.0.0.1; the URL of each one's /hook."""
    servers: list[TestServer] = []

    async def start(receiver: Receiver) -> str:
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        server = TestServer(app, host="127.0.0.1")  # port None: a free one
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/hook"))

    yield start
    for server in servers:
        await server.close()


def sender_for(url: str, fake: FakeTime, **options: Any) -> WebhookSender:
    return WebhookSender(url, clock=fake.clock, sleep=fake.sleep, rng=random.Random(7), **options)


def record(action_id: str) -> tuple[str, bytes]:
    return action_id, json.dumps({"action_id": action_id, "action": "cart_reminder"}).encode()


async def test_an_accepting_server_gets_body_and_headers_as_sent(serve: Serve) -> None:
    receiver = Receiver(accept)
    url = await serve(receiver)
    records = [record("a" * 32), record("b" * 32)]
    async with sender_for(url, FakeTime(), headers={"Authorization": "Bearer s3cret"}) as sender:
        assert await sender.deliver(records) == []
        assert sender.take_counts() == WebhookCounts(ok=2)
        assert sender.take_counts() == WebhookCounts()  # taken: reset
    arrived = sorted((headers["Idempotency-Key"], body) for headers, body in receiver.requests)
    assert arrived == sorted(records)
    for headers, _ in receiver.requests:
        assert headers["Content-Type"] == "application/json"
        assert headers["Authorization"] == "Bearer s3cret"


async def test_two_500s_then_accepted_is_delivered_with_two_retries(serve: Serve) -> None:
    receiver = Receiver(status_then_accept(500, times=2))
    fake = FakeTime()
    async with sender_for(await serve(receiver), fake, backoff_seconds=1.0) as sender:
        assert await sender.deliver([record("c" * 32)]) == []
        assert sender.take_counts() == WebhookCounts(ok=1, retried=2, failed=0)
    assert [headers["Idempotency-Key"] for headers, _ in receiver.requests] == ["c" * 32] * 3
    # Full jitter: the k-th backoff lies in [0, base * 2**(k-1)].
    assert len(fake.sleeps) == 2
    assert 0 <= fake.sleeps[0] <= 1.0 and 0 <= fake.sleeps[1] <= 2.0


async def test_a_server_always_failing_gives_up_after_max_attempts(serve: Serve) -> None:
    receiver = Receiver(status_then_accept(500, times=99))
    async with sender_for(await serve(receiver), FakeTime(), max_attempts=4) as sender:
        body = record("d" * 32)[1]
        failures = await sender.deliver([("d" * 32, body)])
        assert failures == [DeliveryFailure("d" * 32, body, 500, "http_500", 4)]
        assert sender.take_counts() == WebhookCounts(ok=0, retried=3, failed=1)
    assert len(receiver.requests) == 4


@pytest.mark.parametrize(
    ("status", "reason"), [(400, "http_400"), (404, "http_404"), (302, "http_302")]
)
async def test_client_errors_and_redirects_are_not_retried(
    serve: Serve, status: int, reason: str
) -> None:
    async def respond(_: int) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": "http://elsewhere.invalid/"})

    receiver = Receiver(respond)
    async with sender_for(await serve(receiver), FakeTime()) as sender:
        [failure] = await sender.deliver([record("e" * 32)])
        assert (failure.status, failure.reason, failure.attempts) == (status, reason, 1)
        assert sender.take_counts() == WebhookCounts(failed=1)
    assert len(receiver.requests) == 1


async def test_a_hanging_server_times_out_after_max_attempts(serve: Serve) -> None:
    released = asyncio.Event()

    async def hang(_: int) -> web.StreamResponse:
        await released.wait()
        return web.Response(status=200)

    receiver = Receiver(hang)
    fake = FakeTime()
    url = await serve(receiver)
    try:
        async with sender_for(url, fake, timeout_seconds=0.2, max_attempts=2) as sender:
            # wait_for only guards the test run against a hang; it asserts no timing.
            [failure] = await asyncio.wait_for(sender.deliver([record("f" * 32)]), 30)
    finally:
        released.set()
    assert (failure.status, failure.reason, failure.attempts) == (None, "timeout", 2)
    assert len(receiver.requests) == 2
    assert len(fake.sleeps) == 1  # one backoff between the two attempts, in fake time


async def test_429_retry_after_is_honoured_up_to_the_cap(serve: Serve) -> None:
    receiver = Receiver(status_then_accept(429, times=1, headers={"Retry-After": "7"}))
    fake = FakeTime()
    async with sender_for(await serve(receiver), fake) as sender:
        assert await sender.deliver([record("g" * 32)]) == []
    assert fake.sleeps == [7.0]

    receiver = Receiver(status_then_accept(429, times=1, headers={"Retry-After": "3600"}))
    fake = FakeTime()
    async with sender_for(await serve(receiver), fake) as sender:
        assert await sender.deliver([record("h" * 32)]) == []
    assert fake.sleeps == [30.0]


async def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with sender_for(f"http://127.0.0.1:{port}/hook", FakeTime(), max_attempts=3) as sender:
        [failure] = await sender.deliver([record("i" * 32)])
        assert (failure.status, failure.reason, failure.attempts) == (None, "connection_error", 3)
        assert sender.take_counts() == WebhookCounts(retried=2, failed=1)


async def test_rate_limit_paces_deliveries_in_fake_time(serve: Serve) -> None:
    receiver = Receiver(accept)
    fake = FakeTime()
    url = await serve(receiver)
    async with sender_for(url, fake, rate_limit_per_second=10) as sender:  # burst: 10
        assert await sender.deliver([record(f"{i:032x}") for i in range(30)]) == []
    assert len(receiver.requests) == 30
    assert fake.now == pytest.approx((30 - 10) / 10)


async def test_rate_limit_zero_never_waits(serve: Serve) -> None:
    fake = FakeTime()
    async with sender_for(await serve(Receiver(accept)), fake, rate_limit_per_second=0) as sender:
        assert await sender.deliver([record(f"{i:032x}") for i in range(100)]) == []
    assert fake.sleeps == []


async def test_concurrency_stays_within_the_limit(serve: Serve) -> None:
    in_flight = 0
    most = 0

    async def slow(_: int) -> web.StreamResponse:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return web.Response(status=200)

    url = await serve(Receiver(slow))
    async with sender_for(url, FakeTime(), max_concurrency=3, rate_limit_per_second=0) as sender:
        assert await sender.deliver([record(f"{i:032x}") for i in range(12)]) == []
    assert 1 <= most <= 3


async def test_an_action_id_unusable_as_a_header_is_reported_not_sent(serve: Serve) -> None:
    receiver = Receiver(accept)
    async with sender_for(await serve(receiver), FakeTime()) as sender:
        [failure] = await sender.deliver([("bad\r\nid", b"{}"), record("j" * 32)])
        assert (failure.action_id, failure.reason, failure.attempts) == (
            "bad\r\nid",
            "invalid_action_id",
            0,
        )
    assert len(receiver.requests) == 1


def test_dead_letter_headers_name_the_failure_without_credentials() -> None:
    sender = WebhookSender("https://user:pw@hooks.example.com:8443/crm/hook?token=abc#x")
    failure = DeliveryFailure("k" * 32, b"{}", None, "timeout", 5)
    assert sender.dead_letter_headers(failure) == [
        (DLQ_HEADER_REASON, b"timeout"),
        (DLQ_HEADER_WEBHOOK_STATUS, b""),
        (DLQ_HEADER_WEBHOOK_ATTEMPTS, b"5"),
        (DLQ_HEADER_WEBHOOK_URL, b"https://hooks.example.com:8443/crm/hook"),
    ]
    with_status = DeliveryFailure("k" * 32, b"{}", 503, "http_503", 2)
    assert (DLQ_HEADER_WEBHOOK_STATUS, b"503") in sender.dead_letter_headers(with_status)
    assert "pw" not in repr(sender) and "token" not in repr(sender)


async def test_secrets_stay_out_of_the_log(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    url = (await serve(Receiver(status_then_accept(400, times=9)))).replace(
        "http://", "http://user:pw-secret@"
    )
    caplog.set_level(logging.DEBUG)
    headers = {"X-Api-Key": "header-secret"}
    async with sender_for(url + "?key=query-secret", FakeTime(), headers=headers) as sender:
        assert len(await sender.deliver([record("l" * 32)])) == 1
    client_side = [r.getMessage() for r in caplog.records if r.name != "aiohttp.access"]
    assert any("1 of 1 webhook deliveries" in message for message in client_side)
    assert not [message for message in client_side if "secret" in message]


def test_misuse_is_a_clear_error() -> None:
    with pytest.raises(WebhookError, match="http"):
        WebhookSender("ftp://example.com/hook")
    with pytest.raises(WebhookError, match="unparseable"):
        WebhookSender("http://example.com:port/hook")
    with pytest.raises(WebhookError, match="rate_limit_per_second"):
        WebhookSender("http://example.com/hook", rate_limit_per_second=-1)
    with pytest.raises(WebhookError, match="max_attempts"):
        WebhookSender("http://example.com/hook", max_attempts=0)
    with pytest.raises(WebhookError, match="Authorization"):
        WebhookSender("http://u:p@example.com/hook", headers={"authorization": "Basic x"})
    with pytest.raises(WebhookError, match="before start"):
        asyncio.run(WebhookSender("http://example.com/hook").deliver([record("m" * 32)]))


async def test_token_bucket_n_at_rate_r_take_n_minus_burst_over_r() -> None:
    fake = FakeTime()
    bucket = TokenBucket(8, burst=4, clock=fake.clock, sleep=fake.sleep)
    for _ in range(20):
        await bucket.acquire()
    assert fake.now == pytest.approx((20 - 4) / 8)
    fake.now += 10  # idle: the bucket refills to its burst, no more
    for _ in range(4):
        await bucket.acquire()
    assert fake.now == pytest.approx((20 - 4) / 8 + 10)


def test_backoff_is_seeded_capped_full_jitter() -> None:
    delays = [backoff_delay(k, 0.5, 30.0, random.Random(1)) for k in range(1, 12)]
    assert delays == [backoff_delay(k, 0.5, 30.0, random.Random(1)) for k in range(1, 12)]
    for k, delay in enumerate(delays, start=1):
        assert 0 <= delay <= min(30.0, 0.5 * 2 ** (k - 1))
    draws = [backoff_delay(11, 0.5, 30.0, random.Random(seed)) for seed in range(200)]
    assert max(draws) <= 30.0 and max(draws) > 15.0  # capped, yet spread over the range


def test_retry_after_reads_seconds_and_http_dates() -> None:
    date_epoch = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after_seconds("12", 0.0) == 12.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", date_epoch - 5) == 5.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", date_epoch + 5) == 0.0
    assert retry_after_seconds("soon", 0.0) is None
    assert retry_after_seconds(None, 0.0) is None
