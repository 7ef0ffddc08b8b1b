"""Agents and timers: wiring between Faust and the scoring step (streams.handler)."""

import asyncio
import gc
import time
from typing import Any

from mode import Service

from model.scorer import SequenceScorer
from streams.app import Runtime
from streams.handler import BatchHandler, input_records
from streams.kafka_security import aiokafka_options
from streams.lag import LagMonitor
from streams.metrics import WorkerMetrics
from streams.publisher import BatchPublisher, PublishError
from streams.settings import Settings

# Events scored between two yields to the event loop: keeps each blocking slice short.
SLICE_SIZE = 128
# Bundles (one per fetched partition run) gathered into one micro-batch at most.
MAX_BUNDLES = 32


def register_agents(
    runtime: Runtime,
    scorer: SequenceScorer,
    settings: Settings,
    metrics: WorkerMetrics,
    horizon_ms: int,
    publisher: BatchPublisher | None = None,
) -> BatchHandler:
    """Attach the scoring agent and the housekeeping timers to the app."""
    app = runtime.app
    sink = publisher or BatchPublisher(settings.bootstrap, security=aiokafka_options(settings))
    handler = BatchHandler(runtime, scorer, settings, metrics, sink, horizon_ms)
    lag_monitor = LagMonitor(settings, metrics)

    # concurrency must stay 1: faust-streaming #606 commits offsets past in-flight messages.
    @app.agent(runtime.input_topic, name="score_events", concurrency=1)
    async def score_events(stream: Any) -> None:
        await sink.prepare([settings.output_topic, settings.dlq_topic])
        within = settings.batch_wait_ms / 1000.0
        async for events in stream.take_events(MAX_BUNDLES, within=within):
            consumed_at = time.time()
            records = [r for e in events for r in input_records(e, consumed_at)]
            for start in range(0, len(records), SLICE_SIZE):
                handler.handle(records[start : start + SLICE_SIZE])
                await asyncio.sleep(0)
            try:
                await handler.publish()  # take_events acks this batch only after we return here
            except PublishError as exc:
                # Restarting only the agent would drop this unacked batch and stall commits:
                # stop the whole worker instead; its successor re-reads from the last commit.
                await app.crash(exc)
                raise

    @app.task
    async def freeze_startup_objects() -> None:
        # Everything built so far (torch, Faust, the model) lives as long as the worker: keep
        # it out of the garbage collector's full passes, which otherwise stall the event loop.
        gc.collect()
        gc.freeze()

    @app.timer(settings.sweep_interval_seconds)
    async def expire_idle_users() -> None:
        owned = active_partitions(runtime)
        table = runtime.user_states
        idle = table.idle_keys(int(time.time() * 1000), settings.user_ttl_ms, owned)
        for key, partition in idle:
            table.delete(key)
            sink.enqueue(table.changelog_topic, key, None, partition=partition)
        await sink.flush()
        metrics.users_expired.inc(len(idle))

    @app.timer(settings.lag_interval_seconds)
    async def measure_lag() -> None:
        await lag_monitor.measure(sorted(app.consumer.assignment()))
        metrics.active_users.set(len(runtime.user_states))
        metrics.state_bytes.set(runtime.user_states.size_bytes())

    @app.timer(1.0)
    async def report_readiness() -> None:
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        metrics.ready.set(1 if recovered and not app.rebalancing else 0)

    class KafkaClientsService(Service):
        """Closes the worker's own Kafka clients when the app stops."""

        async def on_stop(self) -> None:
            await lag_monitor.close()
            await sink.stop()

    app.service(KafkaClientsService)
    return handler


def active_partitions(runtime: Runtime) -> set[int]:
    """Partitions of the input topics this worker actively owns (standbys excluded)."""
    topics = set(runtime.input_topic.topics)
    return {tp.partition for tp in runtime.app.assignor.assigned_actives() if tp.topic in topics}
