"""The live-quality service: follows the outcomes topic and keeps the propensity_live_* gauges.

It reads every partition of the topic with its own aiokafka consumer and no consumer group,
so every worker computes the same global figures (a dashboard takes the max by
model_version), and a worker joining or leaving moves nothing. It starts at the first
records written within the event-time window (``offsets_for_times``; the beginning where the
broker cannot say), so a restarted worker refills its windows from the topic. (The embedded
Tansu broker answers every ``offsets_for_times`` with offset 0, so there the service reads from
the beginning; on Apache Kafka it skips what was written before the window.)

Figures are computed off the scoring path: records are parsed on the event loop in small
batches (about 8 µs each), the windows copied there (milliseconds), and the figures computed
in a thread. A computation starts at most every ``quality_interval_seconds`` and only when
outcomes arrived since the last one; while one takes longer than a quarter of the interval
(an event-time window near its million-outcome cap takes seconds), the interval stretches to
four times its duration, so live quality never takes more than about a quarter of a core.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from model.monitoring.quality import HOUR_MS, LiveQuality, QualityLimits, figures_of
from streams.worker.kafka_security import aiokafka_options
from streams.worker.metrics import WorkerMetrics
from streams.worker.settings import Settings

log = logging.getLogger(__name__)

FETCH_RECORDS = 1000  # per getmany: parsing them blocks the loop ~8 ms
FETCH_WAIT_MS = 500
COMPUTE_SHARE = 0.25  # most of the time figures may take, as a share of the interval
SKIP_LOG_SECONDS = 60.0  # one summary line per minute at most for skipped records


def quality_limits(settings: Settings) -> QualityLimits:
    return QualityLimits(
        window_outcomes=settings.quality_window_outcomes,
        window_ms=round(settings.quality_window_hours * HOUR_MS),
        time_window_cap=settings.quality_window_cap,
    )


class LiveQualityFollower:
    """Consumes the outcomes topic into a LiveQuality and exports its figures."""

    def __init__(
        self,
        settings: Settings,
        metrics: WorkerMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.quality = LiveQuality(quality_limits(settings))
        self._clock = clock
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned = False
        self._computed_revision = -1
        self._next_compute = 0.0  # time.monotonic()
        self._cap_drops_exported = 0
        self._skipped_since_log: Counter[str] = Counter()
        self._last_skip_log = 0.0
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Follow the topic until stopped; errors are logged and retried, never raised: an
        exception escaping a Faust app task would crash the worker, and scoring matters more
        than monitoring."""
        self._task = asyncio.current_task()
        while True:
            try:
                await self.step()
            except KafkaError as exc:
                log.warning("live quality: %s; retrying in %.0fs", exc, self.interval)
                await self._reset()
                await asyncio.sleep(self.interval)
            except Exception:
                log.exception("live quality failed; retrying in %.0fs", self.interval)
                await self._reset()
                await asyncio.sleep(self.interval)

    @property
    def interval(self) -> float:
        return self.settings.quality_interval_seconds

    async def step(self) -> None:
        """One fetch of outcome records, then the gauges if they are due."""
        consumer = await self._client()
        if not self._assigned and not await self._assign(consumer):
            await asyncio.sleep(self.interval)  # the topic does not exist yet
            return
        batch = await consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=FETCH_RECORDS)
        for messages in batch.values():
            for message in messages:
                reason = self.quality.add_value(message.value)
                if reason is not None:
                    self.metrics.live_quality_skipped.labels(reason).inc()
                    self._skipped_since_log[reason] += 1
        self._log_skipped()
        if time.monotonic() >= self._next_compute:
            await self.export()

    async def export(self) -> None:
        """Compute the figures in a thread (if outcomes arrived since) and set the gauges."""
        quality = self.quality
        drops = quality.cap_drops - self._cap_drops_exported
        if drops:
            self.metrics.live_quality_cap_drops.inc(drops)
            self._cap_drops_exported = quality.cap_drops
        if quality.revision == self._computed_revision:
            return
        revision, contents = quality.revision, quality.windows()
        started = time.monotonic()
        figures = await asyncio.get_running_loop().run_in_executor(None, figures_of, contents)
        took = time.monotonic() - started
        self.metrics.set_live_quality(figures)
        self.metrics.live_quality_seconds.set(took)
        self._computed_revision = revision
        self._next_compute = time.monotonic() + max(self.interval, took / COMPUTE_SHARE)

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
                client_id="propensity-live-quality",
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
        topic = self.settings.outcomes_topic
        await consumer.topics()  # refreshes the cluster metadata
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return False
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        since_ms = int((self._clock() - self.settings.quality_window_hours * 3600) * 1000)
        try:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, max(since_ms, 0)))
        except KafkaError as exc:
            log.info("live quality: no offsets by time (%s): reading %s from the start", exc, topic)
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
        log.info("live quality: following %d partitions of %s", len(tps), topic)
        return True

    def _log_skipped(self) -> None:
        now = time.monotonic()
        if not self._skipped_since_log or now - self._last_skip_log < SKIP_LOG_SECONDS:
            return
        summary = ", ".join(
            f"{n} {reason}" for reason, n in sorted(self._skipped_since_log.items())
        )
        log.warning("live quality skipped outcome records: %s", summary)
        self._skipped_since_log.clear()
        self._last_skip_log = now

    async def _reset(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._assigned = False
        if consumer is not None:
            await consumer.stop()
