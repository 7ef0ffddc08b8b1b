"""Agents and timers: wiring between Faust and the pure batch processing."""

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from faust.types import EventT
from mode import Service

from model.scorer import SequenceScorer
from streams.app import Runtime
from streams.lag import LagMonitor
from streams.metrics import WorkerMetrics
from streams.processing import BatchResult, InputRecord, output_records, process_batch, stored_state
from streams.settings import Settings

# Events scored between two yields to the event loop: keeps each blocking slice short.
SLICE_SIZE = 128


def to_input_record(event: EventT, consumed_at: float) -> InputRecord:
    message = event.message
    timestamp = message.timestamp
    return InputRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp=None if timestamp is None else int(timestamp * 1000),
        consumed_at=consumed_at,
    )


class BatchHandler:
    """Scores one slice of events and hands every output to the producer before it returns."""

    def __init__(
        self,
        runtime: Runtime,
        scorer: SequenceScorer,
        settings: Settings,
        metrics: WorkerMetrics,
        horizon_ms: int,
    ) -> None:
        self.runtime = runtime
        self.scorer = scorer
        self.settings = settings
        self.metrics = metrics
        self.horizon_ms = horizon_ms
        self.load_state = stored_state(runtime.user_states.get, scorer)

    def handle(self, records: Sequence[InputRecord]) -> BatchResult:
        started = time.perf_counter()
        rebuilds_before = self.scorer.rebuilds
        result = process_batch(
            records,
            scorer=self.scorer,
            load_state=self.load_state,
            max_event_bytes=self.settings.max_event_bytes,
            horizon_ms=self.horizon_ms,
        )
        rt = self.runtime
        for dead in result.dead_letters:
            out = dead.to_output()
            rt.dlq_topic.send_soon(key=out.key, value=out.value, headers=out.headers)
        for out in output_records(result):
            rt.output_topic.send_soon(key=out.key, value=out.value)
        for user, (partition, state) in result.states.items():
            rt.user_states.put(user, partition, state)
        self._observe(records, result, time.perf_counter() - started, rebuilds_before)
        return result

    def _observe(
        self,
        records: Sequence[InputRecord],
        result: BatchResult,
        duration: float,
        rebuilds_before: int,
    ) -> None:
        m = self.metrics
        published_at = time.time()
        m.batch_size.observe(len(records))
        m.batch_duration.observe(duration)
        for dead in result.dead_letters:
            m.events_consumed.labels(dead.record.topic, "invalid").inc()
            m.invalid_events.labels(dead.reason).inc()
            m.dlq_writes.labels(dead.reason).inc()
        purchase, cart_abandon = m.scores.labels("purchase"), m.scores.labels("cart_abandon")
        for scored in result.scored:
            m.events_consumed.labels(scored.record.topic, scored.event.event_type).inc()
            m.end_to_end_latency.observe(max(published_at - scored.event.ts / 1000.0, 0.0))
            m.processing_latency.observe(max(published_at - scored.record.consumed_at, 0.0))
            scores: Any = scored.message["scores"]
            purchase.observe(scores["purchase"])
            if scores["cart_abandon"] is not None:
                cart_abandon.observe(scores["cart_abandon"])
        m.propensities_published.inc(len(result.scored))
        m.state_rebuilds.inc(self.scorer.rebuilds - rebuilds_before)


def register_agents(
    runtime: Runtime,
    scorer: SequenceScorer,
    settings: Settings,
    metrics: WorkerMetrics,
    horizon_ms: int,
) -> BatchHandler:
    """Attach the scoring agent and the housekeeping timers to the app."""
    app = runtime.app
    handler = BatchHandler(runtime, scorer, settings, metrics, horizon_ms)

    # concurrency must stay 1: faust-streaming #606 commits offsets past in-flight messages.
    @app.agent(runtime.input_topic, name="score_events", concurrency=1)
    async def score_events(stream: Any) -> None:
        within = settings.batch_wait_ms / 1000.0
        async for events in stream.take_events(settings.batch_size, within=within):
            consumed_at = time.time()
            records = [to_input_record(e, consumed_at) for e in events]
            for start in range(0, len(records), SLICE_SIZE):
                handler.handle(records[start : start + SLICE_SIZE])
                await asyncio.sleep(0)

    @app.timer(settings.sweep_interval_seconds)
    async def expire_idle_users() -> None:
        owned = active_partitions(runtime)
        idle = runtime.user_states.idle_keys(int(time.time() * 1000), settings.user_ttl_ms, owned)
        for key, partition in idle:
            runtime.user_states.delete(key, partition)
        metrics.users_expired.inc(len(idle))

    lag_monitor = LagMonitor(settings, metrics)

    @app.timer(settings.lag_interval_seconds)
    async def measure_lag() -> None:
        await lag_monitor.measure(sorted(app.consumer.assignment()))
        metrics.active_users.set(len(runtime.user_states))
        metrics.state_bytes.set(runtime.user_states.size_bytes())

    @app.timer(1.0)
    async def report_readiness() -> None:
        recovered = app.tables.recovery.completed.is_set()
        metrics.ready.set(1 if recovered and not app.rebalancing else 0)

    class LagMonitorService(Service):
        """Closes the lag monitor's Kafka clients when the app stops."""

        async def on_stop(self) -> None:
            await lag_monitor.close()

    app.service(LagMonitorService)
    return handler


def active_partitions(runtime: Runtime) -> set[int]:
    """Partitions of the input topics this worker actively owns (standbys excluded)."""
    topics = set(runtime.input_topic.topics)
    return {tp.partition for tp in runtime.app.assignor.assigned_actives() if tp.topic in topics}
