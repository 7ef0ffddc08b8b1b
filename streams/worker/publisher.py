"""Batched publishing of outputs (propensities, dead letters, changelog) with aiokafka.

Faust's per-message send path (FutureMessage, producer buffer, one aiokafka send each) costs
more than scoring an event. The worker builds one record batch per topic-partition instead and
awaits the broker's acknowledgement of every batch before the agent acks its input, so a
propensity is always published before its input offset can be committed (at-least-once).
"""

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from schemas.exceptions import PropensityError

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]
_Groups = dict[tuple[str, int], list[tuple[bytes | None, bytes | None, Headers]]]
SEND_ATTEMPTS = 8


class PublishError(PropensityError):
    """Outputs could not be published: the agent must not ack its input."""


class Publisher(Protocol):
    """What the agents publish through: BatchPublisher, or a test's capture."""

    async def prepare(self, topics: Sequence[str]) -> None: ...

    def enqueue(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: Headers = (),
    ) -> None: ...

    async def flush(self) -> int: ...

    async def stop(self) -> None: ...


class BatchPublisher:
    """Queue records per topic-partition, then ``flush()`` them as record batches."""

    def __init__(
        self,
        bootstrap_servers: str,
        client_id: str = "propensity-publisher",
        producer: AIOKafkaProducer | None = None,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._security = dict(security or {})  # streams.worker.kafka_security.aiokafka_options
        self._producer = producer  # None: created (and started) on first use
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._queued: _Groups = {}
        self._lock = asyncio.Lock()

    async def start(self) -> AIOKafkaProducer:
        """The started producer (created here: aiokafka needs a running event loop)."""
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap_servers,
                client_id=self._client_id,
                acks="all",
                max_batch_size=512 * 1024,
                **self._security,
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def prepare(self, topics: Sequence[str]) -> None:
        """Start and learn the partition counts of the topics that keyed records go to."""
        producer = await self.start()
        for topic in topics:
            if topic not in self._partitions:
                self._partitions[topic] = sorted(await producer.partitions_for(topic))

    def partition_for(self, topic: str, key: bytes) -> int:
        """Kafka's default (murmur2) partition of a key, as Java clients and aiokafka choose."""
        partitions = self._partitions[topic]
        return int(self._partitioner(key, partitions, partitions))

    def enqueue(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: Headers = (),
    ) -> None:
        """Queue one record; the partition defaults to the key's (topic must be prepared)."""
        if partition is None:
            partition = self.partition_for(topic, key) if key is not None else 0
        self._queued.setdefault((topic, partition), []).append((key, value, headers))

    async def flush(self) -> int:
        """Send everything queued and wait until the broker acknowledged all of it.

        Flushes run one at a time, so a caller that returns knows that everything queued
        before its call (by anyone) is acknowledged. Batches that fail with a retriable error
        (leader moved, broker briefly unavailable) are sent again with backoff.
        """
        async with self._lock:
            queued, self._queued = self._queued, {}
            if not queued:
                return 0
            producer = await self.start()
            pending = queued
            for attempt in range(SEND_ATTEMPTS):
                pending = await self._send(producer, pending)
                if not pending:
                    return sum(len(records) for records in queued.values())
                log.warning("re-sending %d batches after a retriable error", len(pending))
                await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
            raise PublishError(
                f"{len(pending)} batches still failing after {SEND_ATTEMPTS} attempts"
            )

    async def _send(self, producer: AIOKafkaProducer, groups: "_Groups") -> "_Groups":
        """Send each topic-partition's records; return those that failed retriably."""
        sent: list[tuple[tuple[str, int], asyncio.Future[object]]] = []
        for (topic, partition), records in groups.items():
            batch = producer.create_batch()
            for key, value, headers in records:
                # append() refuses a record only when the batch is full (an empty batch takes
                # a record of any size), so this loop ends.
                while (
                    batch.append(key=key, value=value, timestamp=None, headers=list(headers))
                    is None
                ):
                    sent.append(
                        (
                            (topic, partition),
                            await producer.send_batch(batch, topic, partition=partition),
                        )
                    )
                    batch = producer.create_batch()
            if batch.record_count():
                sent.append(
                    (
                        (topic, partition),
                        await producer.send_batch(batch, topic, partition=partition),
                    )
                )
        outcomes = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        failed: _Groups = {}
        for (group, _), outcome in zip(sent, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not (isinstance(outcome, KafkaError) and outcome.retriable):
                    raise outcome
                failed[group] = groups[group]  # all again: duplicates possible, latest per key last
        return failed
