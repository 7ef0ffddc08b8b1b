"""Send contract events (or raw JSON lines) to the input topics with aiokafka, optionally paced."""

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import orjson
from aiokafka import AIOKafkaProducer

from schemas.events import ShopEvent
from streams.worker.kafka_security import aiokafka_options
from streams.worker.settings import Settings

CLICK_TYPES = frozenset({"view", "wishlist"})
CART_TYPES = frozenset({"add_to_cart", "remove_from_cart"})


def topic_for(event_type: str | None, topics: tuple[str, ...]) -> str:
    """clicks/carts/purchases routing when three input topics are configured, else the one."""
    if len(topics) < 3 or event_type is None:
        return topics[0]
    if event_type in CLICK_TYPES:
        return topics[0]
    if event_type in CART_TYPES:
        return topics[1]
    return topics[2]


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    key: bytes | None
    value: bytes


def record_for_event(event: ShopEvent, topics: tuple[str, ...]) -> OutgoingRecord:
    return OutgoingRecord(
        topic_for(event.event_type, topics), event.user_id.encode("utf-8"), event.to_bytes()
    )


def record_for_line(line: bytes, topics: tuple[str, ...]) -> OutgoingRecord:
    """A JSON line as is; key and topic from its fields. Unparsable lines still go out, so the
    worker dead-letters them with a reason instead of this tool dropping them."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
    user = obj.get("user_id") if isinstance(obj, dict) else None
    event_type = obj.get("event_type") if isinstance(obj, dict) else None
    key = user.encode("utf-8") if isinstance(user, str) and user else None
    kind = event_type if isinstance(event_type, str) else None
    return OutgoingRecord(topic_for(kind, topics), key, line)


@dataclass
class SendStats:
    sent: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


async def send_records(
    settings: Settings,
    records: Iterable[OutgoingRecord],
    *,
    rate: float | None = None,
    stop: asyncio.Event | None = None,
    linger_ms: int = 5,
    stats: SendStats | None = None,
) -> SendStats:
    """Produce records, at most ``rate`` per second when given; returns after all are acked.

    ``stats`` (updated as records go out) lets a caller watch progress."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        **aiokafka_options(settings),
    )
    stats = stats if stats is not None else SendStats()
    pending: list[asyncio.Future[object]] = []
    try:
        await producer.start()  # inside try: a failed start is stopped too
        started = time.monotonic()
        for record in records:
            if stop is not None and stop.is_set():
                break
            pending.append(await producer.send(record.topic, record.value, key=record.key))
            stats.sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
            if rate:
                ahead = stats.sent / rate - (time.monotonic() - started)
                if ahead > 0.002:
                    await asyncio.sleep(ahead)
                elif ahead < -0.05:
                    # Fell behind (start-up, a slow moment): go on at the rate, no catch-up burst.
                    started = time.monotonic() - stats.sent / rate
        await producer.flush()
        if pending:
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    stats.seconds = time.monotonic() - started
    return stats


def live_events(
    events: Iterable[ShopEvent], clock: Callable[[], float] = time.time
) -> Iterator[ShopEvent]:
    """Re-stamp events with the wall clock as they are sent (for demos of a live shop)."""
    for event in events:
        yield replace(event, ts=int(clock() * 1000))


def with_malformed(
    records: Iterable[OutgoingRecord], every: int, topic: str
) -> Iterator[OutgoingRecord]:
    """Insert a truncated copy of every ``every``-th record, to show the dead-letter path."""
    for n, record in enumerate(records, 1):
        yield record
        if every and n % every == 0:
            yield OutgoingRecord(topic, record.key, record.value[: len(record.value) // 2])
