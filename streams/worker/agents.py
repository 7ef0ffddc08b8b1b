"""Agents and timers: wiring between Faust and the scoring step (streams.worker.handler)."""

import asyncio
import gc
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

from mode import Service

from model.serving.scorer import SequenceScorer
from streams.worker.app import Runtime
from streams.worker.handler import BatchHandler, input_records
from streams.worker.kafka_security import aiokafka_options
from streams.worker.lag import LagMonitor
from streams.worker.metrics import WorkerMetrics
from streams.worker.publisher import BatchPublisher
from streams.worker.settings import Settings

# Events scored between two yields to the event loop: keeps each blocking slice short.
SLICE_SIZE = 128
# Bundles (one per fetched partition run) gathered into one micro-batch at most.
MAX_BUNDLES = 32
# Exit status of a worker stopped by a fault that is not its input's (EX_SOFTWARE).
FATAL_EXIT_CODE = 70

log = logging.getLogger(__name__)

FatalHandler = Callable[[BaseException], None]


def fail_stop(metrics: WorkerMetrics) -> FatalHandler:
    """What the worker does when scoring or publishing fails: stop at once, committing nothing.

    Faust's take_events acks a batch in a ``finally`` when the agent's loop is left by an
    exception, and its consumer commits acked offsets on stop; either would commit input whose
    outputs were never published. Exiting the process skips both: the successor re-reads from
    the last commit, and redelivered input that was already applied changes nothing.
    """

    def stop(exc: BaseException) -> NoReturn:
        metrics.ready.set(0)
        log.critical(
            "stopping the worker: %s: %s (not the input's fault; offsets of the unpublished "
            "batch are not committed, a restarted worker re-reads them)",
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        logging.shutdown()
        sys.stderr.flush()
        os._exit(FATAL_EXIT_CODE)

    return stop


def register_agents(
    runtime: Runtime,
    scorer: SequenceScorer,
    settings: Settings,
    metrics: WorkerMetrics,
    horizon_ms: int,
    publisher: BatchPublisher | None = None,
    on_fatal: FatalHandler | None = None,
) -> BatchHandler:
    """Attach the scoring agent and the housekeeping timers to the app.

    ``on_fatal`` is called with any exception from scoring or publishing (default: fail_stop,
    which ends the process); tests pass their own.
    """
    app = runtime.app
    fatal = on_fatal or fail_stop(metrics)
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
            try:
                for start in range(0, len(records), SLICE_SIZE):
                    handler.handle(records[start : start + SLICE_SIZE])
                    await asyncio.sleep(0)
                await handler.publish()  # take_events acks this batch only after we return here
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the input's faults are dead letters: this is ours
                fatal(exc)
                raise  # only reached when a test's handler returns

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
        users, size = runtime.user_states.usage(active_partitions(runtime))
        metrics.active_users.set(users)  # standby replicas' users are not this worker's
        metrics.state_bytes.set(size)

    @app.timer(0.25)  # a restarted worker reports ready within a quarter second of recovery
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
