"""Consumer lag per partition: broker high-water mark minus the group's committed offset.

Faust exports no lag, so the worker measures it with its own aiokafka clients. Note: the
embedded Tansu broker under-reports the high-water mark (last batch's base offset + 1), so on
Tansu the lag reads low; on Apache Kafka it is exact.
"""

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.types import TP

from streams.worker.kafka_security import aiokafka_options
from streams.worker.metrics import WorkerMetrics
from streams.worker.settings import Settings


class LagMonitor:
    """Measures lag of the given partitions and sets the propensity_consumer_lag gauge."""

    def __init__(self, settings: Settings, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            common = {
                "bootstrap_servers": self.settings.bootstrap,
                "client_id": "propensity-lag",
                **aiokafka_options(self.settings),
            }
            self._admin = AIOKafkaAdminClient(**common)
            await self._admin.start()
            self._consumer = AIOKafkaConsumer(**common)
            await self._consumer.start()
        return self._admin, self._consumer

    async def measure(self, assigned: Sequence[TP]) -> dict[tuple[str, int], int]:
        """Lag of every assigned input partition (faust TPs); the gauge keeps only these."""
        topics = set(self.settings.input_topics)
        tps = [TopicPartition(tp.topic, tp.partition) for tp in assigned if tp.topic in topics]
        if not tps:
            self.metrics.consumer_lag.clear()
            return {}
        admin, consumer = await self._clients()
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(self.settings.app_id, partitions=tps)
        lags: dict[tuple[str, int], int] = {}
        self.metrics.consumer_lag.clear()
        for tp in tps:
            meta = committed.get(tp)
            position = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag = max(ends.get(tp, 0) - position, 0)
            lags[(tp.topic, tp.partition)] = lag
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
        return lags

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()
        self._admin = self._consumer = None
