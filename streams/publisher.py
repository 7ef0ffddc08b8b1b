"""Batched publishing of outputs (propensities, dead letters, changelog) with aiokafka.

Faust's per-message send path (FutureMessage, producer buffer, one aiokafka send each) costs
more than scoring an event. The worker builds one record batch per topic-partition instead and
awaits the broker's acknowledgement of every batch before the agent acks its input, so a
propensity is always published before its input offset can be committed (at-least-once).
"""

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

Headers = Sequence[tuple[str, bytes]]


class BatchPublisher:
    """Queue records per topic-partition, then ``flush()`` them as record batches."""

    def __init__(self, bootstrap_servers: str, client_id: str = "propensity-publisher") -> None:
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._queued: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, Headers]]] = {}
        self._in_flight: set[asyncio.Future[object]] = set()

    async def start(self) -> AIOKafkaProducer:
        """The started producer (created here: aiokafka needs a running event loop)."""
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap_servers,
                client_id=self._client_id,
                acks="all",
                max_batch_size=512 * 1024,
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

    @property
    def pending(self) -> int:
        return sum(len(v) for v in self._queued.values())

    async def flush(self) -> int:
        """Send everything queued and wait until the broker acknowledged all of it.

        Also waits for batches another caller (e.g. the idle sweeper) sent and that are not
        acknowledged yet: they may hold records queued by this caller.
        """
        queued, self._queued = self._queued, {}
        if not queued and not self._in_flight:
            return 0
        producer = await self.start()
        count = 0
        for (topic, partition), records in queued.items():
            batch = producer.create_batch()
            for key, value, headers in records:
                # append() refuses a record only when the batch is full (an empty batch takes
                # a record of any size), so this loop ends.
                while (
                    batch.append(key=key, value=value, timestamp=None, headers=list(headers))
                    is None
                ):
                    self._in_flight.add(
                        await producer.send_batch(batch, topic, partition=partition)
                    )
                    batch = producer.create_batch()
                count += 1
            if batch.record_count():
                self._in_flight.add(await producer.send_batch(batch, topic, partition=partition))
        waiting = list(self._in_flight)
        try:
            await asyncio.gather(*waiting)
        finally:
            self._in_flight.difference_update(f for f in waiting if f.done())
        return count
