"""Follow a whole topic outside the consumer group: the base of the worker's monitors.

A follower reads every partition with its own aiokafka consumer and no consumer group, so
every worker computes the same global figures (dashboards take the max over workers) and a
worker joining or leaving moves nothing. It starts at the records written in the last
``since_hours`` (``offsets_for_times``; the beginning where the broker cannot say: the
embedded Tansu answers every ``offsets_for_times`` with offset 0), hands each record to
``consume`` on the event loop in small batches, and calls ``export`` when it is due. Kafka
errors and any other exception are logged and retried, never raised: an exception escaping a
Faust app task would crash the worker, and scoring matters more than monitoring.
"""

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.worker.kafka_security import aiokafka_options
from streams.worker.settings import Settings

log = logging.getLogger(__name__)

FETCH_RECORDS = 1000  # per getmany: parsing them blocks the loop for milliseconds
FETCH_WAIT_MS = 500
SKIP_LOG_SECONDS = 60.0  # one summary line per minute at most for skipped records


class TopicFollower(ABC):
    name = "follower"  # for logs and the Kafka client id

    def __init__(
        self,
        settings: Settings,
        topic: str,
        since_hours: float,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.since_hours = since_hours
        self.interval = interval
        self._clock = clock
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned = False
        self._next_export = 0.0  # time.monotonic()
        self._skipped_since_log: Counter[str] = Counter()
        self._last_skip_log = 0.0
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    def consume(self, value: bytes | None) -> str | None:
        """Take one record's value; the reason it was skipped, None when it counted."""

    @abstractmethod
    async def export(self) -> float:
        """Set the gauges; return how long to wait before the next export (seconds)."""

    async def run(self) -> None:
        """Follow the topic until stopped."""
        self._task = asyncio.current_task()
        while True:
            try:
                await self.step()
            except KafkaError as exc:
                log.warning("%s: %s; retrying in %.0fs", self.name, exc, self.interval)
                await self._reset()
                await asyncio.sleep(self.interval)
            except Exception:
                log.exception("%s failed; retrying in %.0fs", self.name, self.interval)
                await self._reset()
                await asyncio.sleep(self.interval)

    async def step(self) -> None:
        """One fetch of records, then the export if it is due."""
        consumer = await self._client()
        if not self._assigned and not await self._assign(consumer):
            await asyncio.sleep(self.interval)  # the topic does not exist yet
            return
        batch = await consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=FETCH_RECORDS)
        for messages in batch.values():
            for message in messages:
                reason = self.consume(message.value)
                if reason is not None:
                    self._skipped_since_log[reason] += 1
        self._log_skipped()
        if time.monotonic() >= self._next_export:
            wait = await self.export()
            self._next_export = time.monotonic() + wait

    async def stop(self) -> None:
        """Cancel ``run`` (when running) and close the consumer."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._reset()

    async def _client(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.bootstrap,
                client_id=f"propensity-{self.name.replace(' ', '-')}",
                group_id=None,  # every worker reads everything: the figures are global
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **aiokafka_options(self.settings),
            )
            self._consumer = consumer
            await consumer.start()
        return self._consumer

    async def _assign(self, consumer: AIOKafkaConsumer) -> bool:
        """Take every partition of the topic and seek to the window's start; False when the
        topic has no partitions yet."""
        topic = self.topic
        await consumer.topics()  # refreshes the cluster metadata
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return False
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        since_ms = int((self._clock() - self.since_hours * 3600) * 1000)
        try:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, max(since_ms, 0)))
        except KafkaError as exc:
            log.info(
                "%s: no offsets by time (%s): reading %s from the start", self.name, exc, topic
            )
            found = {}
        for tp in tps:
            offset = found.get(tp)
            if offset is not None:
                consumer.seek(tp, offset.offset)
            elif tp in found:  # every record is older than the window
                await consumer.seek_to_end(tp)
            else:
                await consumer.seek_to_beginning(tp)
        self._assigned = True
        log.info("%s: following %d partitions of %s", self.name, len(tps), topic)
        return True

    def _log_skipped(self) -> None:
        now = time.monotonic()
        if not self._skipped_since_log or now - self._last_skip_log < SKIP_LOG_SECONDS:
            return
        summary = ", ".join(
            f"{n} {reason}" for reason, n in sorted(self._skipped_since_log.items())
        )
        log.warning("%s skipped records of %s: %s", self.name, self.topic, summary)
        self._skipped_since_log.clear()
        self._last_skip_log = now

    async def _reset(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._assigned = False
        if consumer is not None:
            await consumer.stop()
