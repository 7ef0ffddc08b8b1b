"""Helpers for integration tests: produce and collect records.

Workers are started by streams.harness.supervisor.
"""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.harness.broker import free_port
from streams.harness.supervisor import WorkerProcess, start_worker
from streams.worker.settings import Settings

__all__ = ["WorkerProcess", "collect", "produce", "start_worker", "worker_settings"]


def worker_settings(
    name: str, bootstrap: str, model: Path, tmp: Path, *, combined: bool = True, **overrides: Any
) -> Settings:
    """Settings of a worker under test: topics and group named after ``name``, a free metrics
    port, quick rebalances. ``combined`` uses one input topic, else clicks/carts/purchases."""
    inputs = (
        (f"{name}.events",)
        if combined
        else (f"{name}.clicks", f"{name}.carts", f"{name}.purchases")
    )
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "app_id": name,
        "input_topics": inputs,
        "output_topic": f"{name}.propensities",
        "dlq_topic": f"{name}.dlq",
        "outcomes_topic": f"{name}.outcomes",
        "partitions": 2,
        "model_path": model,
        "metrics_port": free_port(),
        "data_dir": tmp / "data",
        "rebalance_timeout_seconds": 3.0,
        "lag_interval_seconds": 1.0,
    }
    values.update(overrides)
    return Settings(**values)


async def produce(
    bootstrap: str, records: list[tuple[str, bytes | None, bytes]]
) -> list[tuple[str, int, int]]:
    """Send (topic, key, value) records in order; return their (topic, partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.topic, m.partition, m.offset) for m in metadata]


async def collect(
    bootstrap: str,
    topics: list[str],
    expected: int,
    timeout: float = 90.0,
    settle: float = 2.0,
    complete: Callable[[list[Any]], bool] | None = None,
) -> list[Any]:
    """Read topics from the start until ``expected`` records arrived (or ``complete(found)``
    says so), then ``settle`` more seconds to catch extras, or until the timeout passed."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    settled_at: float | None = None
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for messages in batch.values():
                found.extend(messages)
            if complete(found) if complete else len(found) >= expected:
                settled_at = settled_at or time.monotonic()
                if time.monotonic() - settled_at >= settle:
                    break
    finally:
        await consumer.stop()
    return found
