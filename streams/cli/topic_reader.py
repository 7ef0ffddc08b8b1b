"""Read a whole topic with a plain consumer (no group, nothing committed): from a record
time, to the end offsets seen at the start (or until cancelled), handing each value to a
callback. Used by `propensity monitor` and `propensity uplift`."""

import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.exceptions import PropensityError
from streams.worker.kafka_security import aiokafka_options
from streams.worker.settings import Settings

FETCH_RECORDS: Final = 5000
Tick = Callable[[], Awaitable[None]]


class TopicReadError(PropensityError):
    """The topic cannot be read as asked (absent)."""


async def read_records(
    settings: Settings,
    topic: str,
    consume: Callable[[bytes | None], object],
    *,
    since_ms: int | None,
    until_caught_up: bool,
    on_tick: Tick | None = None,
    tick_seconds: float = 1.0,
) -> int:
    """Feed ``topic`` into ``consume``: from ``since_ms`` (record time; None: the beginning),
    until the end offsets seen at the start are reached and a fetch comes back empty
    (``until_caught_up``), else until cancelled. Returns the records read."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        client_id="propensity-reader",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **aiokafka_options(settings),
    )
    read = 0
    try:
        await consumer.start()
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise TopicReadError(f"topic {topic!r} does not exist at {settings.bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await _seek(consumer, tps, since_ms)
        ends = await consumer.end_offsets(tps) if until_caught_up else {}
        next_tick = time.monotonic()  # the first view after the first fetch
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=FETCH_RECORDS)
            for messages in batch.values():
                for message in messages:
                    consume(message.value)
                read += len(messages)
            if on_tick is not None and time.monotonic() >= next_tick:
                await on_tick()
                next_tick = time.monotonic() + tick_seconds
            # Tansu under-reports end offsets: the end is where a fetch also finds nothing.
            if until_caught_up and not batch and await _reached(consumer, ends):
                return read
    finally:
        await consumer.stop()


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def _seek(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], since_ms: int | None
) -> None:
    if since_ms is None:
        await consumer.seek_to_beginning(*tps)
        return
    found = await consumer.offsets_for_times(dict.fromkeys(tps, max(since_ms, 0)))
    for tp in tps:
        offset = found.get(tp)
        if offset is None:
            await consumer.seek_to_end(tp)  # every record is older
        else:
            consumer.seek(tp, offset.offset)
