"""The batch publisher: one batch per topic-partition, retries of retriable failures."""

import asyncio
from typing import Any

import pytest
from aiokafka.errors import NotLeaderForPartitionError, UnknownError

from streams.worker.publisher import BatchPublisher


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[tuple[Any, Any]] = []

    def append(self, *, key: Any, value: Any, timestamp: Any, headers: Any) -> object:
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class FakeProducer:
    """Acknowledges batches, failing the first ``failures`` sends with ``error``."""

    def __init__(
        self, failures: int = 0, error: type[Exception] = NotLeaderForPartitionError
    ) -> None:
        self.failures = failures
        self.error = error
        self.delivered: list[tuple[str, int, list[Any]]] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(
        self, batch: FakeBatch, topic: str, *, partition: int
    ) -> "asyncio.Future[object]":
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.failures:
            self.failures -= 1
            future.set_exception(self.error())
        else:
            self.delivered.append((topic, partition, batch.records))
            future.set_result(None)
        return future


async def test_one_batch_per_topic_partition() -> None:
    producer = FakeProducer()
    publisher = BatchPublisher("unused", producer=producer)
    for i in range(5):
        publisher.enqueue("out", b"k%d" % i, b"v", partition=i % 2)
    publisher.enqueue("dlq", None, b"bad", partition=0)
    assert await publisher.flush() == 6
    assert sorted((t, p, len(r)) for t, p, r in producer.delivered) == [
        ("dlq", 0, 1),
        ("out", 0, 3),
        ("out", 1, 2),
    ]
    assert await publisher.flush() == 0


async def test_retriable_failures_are_sent_again() -> None:
    producer = FakeProducer(failures=2)
    publisher = BatchPublisher("unused", producer=producer)
    publisher.enqueue("out", b"k", b"v", partition=0)
    assert await publisher.flush() == 1
    assert producer.delivered == [("out", 0, [(b"k", b"v")])]


async def test_other_failures_are_raised() -> None:
    publisher = BatchPublisher("unused", producer=FakeProducer(failures=1, error=UnknownError))
    publisher.enqueue("out", b"k", b"v", partition=0)
    with pytest.raises(UnknownError):
        await publisher.flush()
