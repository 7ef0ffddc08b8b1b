"""Timers beside the agents: idle-user expiry, lag and state gauges, readiness; and the
startup task that freezes what lives as long as the worker."""

import gc
import time

from faust.tables.manager import TableManager

from streams.worker.app import Runtime
from streams.worker.lag import LagMonitor
from streams.worker.metrics import WorkerMetrics
from streams.worker.publisher import Publisher
from streams.worker.settings import Settings


def register(
    runtime: Runtime,
    settings: Settings,
    metrics: WorkerMetrics,
    sink: Publisher,
    lag_monitor: LagMonitor,
) -> None:
    """Attach the housekeeping task and timers to the app."""
    app = runtime.app

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
        tables = app.tables
        recovered = isinstance(tables, TableManager) and tables.recovery.completed.is_set()
        metrics.ready.set(1 if recovered and not app.rebalancing else 0)


def active_partitions(runtime: Runtime) -> set[int]:
    """Partitions of the input topics this worker actively owns (standbys excluded)."""
    topics = set(runtime.input_topic.topics)
    return {tp.partition for tp in runtime.app.assignor.assigned_actives() if tp.topic in topics}
