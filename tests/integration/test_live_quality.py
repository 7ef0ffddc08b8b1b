"""The worker's live-quality service on a real broker: outcome records in, gauges equal to the
pure figures of the same records out (duplicates and malformed records skipped and counted)."""

import asyncio
import math
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from model.monitoring.figures import QualityFigures
from model.monitoring.quality import LiveQuality, QualityLimits
from streams.worker.admin import ensure_topics, service_topics
from streams.worker.live_quality import LiveQualityFollower
from streams.worker.metrics import WorkerMetrics
from streams.worker.settings import Settings
from tests.kafka_helpers import start_worker, worker_settings
from tests.unit.test_live_quality import random_records

N = 400
WINDOW = 150


async def send(bootstrap: str, topic: str, values: list[tuple[int, bytes]]) -> None:
    """Send (partition, value) records in order, acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition, value in values:
            await producer.send_and_wait(topic, value, key=b"k", partition=partition)
    finally:
        await producer.stop()


async def test_gauges_equal_the_pure_figures_of_the_topic(
    kafka_bootstrap: str, unique_name: str
) -> None:
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        outcomes_topic=f"{unique_name}.outcomes",
        partitions=2,
        quality_window_outcomes=WINDOW,
        quality_interval_seconds=0.2,
    )
    ensure_topics(settings, [settings.outcomes_topic])
    records = random_records(N, seed=7)
    now = int(time.time() * 1000)
    for i, r in enumerate(records):  # event times of the last minutes: inside the 24 h window
        r["event_ts"] = now - (N - i) * 1000
    # The outcomes in order on partition 0 (so the count window's content is known); on
    # partition 1 redeliveries of the oldest five (still in the event-time window whenever they
    # are read, so skipped) and two malformed records.
    good = [(0, orjson.dumps(r)) for r in records]
    bad = [(1, orjson.dumps(r)) for r in records[:5]]
    bad += [(1, b"{broken"), (1, orjson.dumps({**records[1], "labels": {"purchase": 3}}))]
    await send(kafka_bootstrap, settings.outcomes_topic, bad + good)

    metrics = WorkerMetrics()
    follower = LiveQualityFollower(settings, metrics)
    task = asyncio.create_task(follower.run())
    sample = metrics.registry.get_sample_value
    count_labels = {"head": "purchase", "model_version": "v1", "window": "24h"}
    try:
        deadline = time.monotonic() + 60
        while sample("propensity_live_outcomes", count_labels) != N:
            assert time.monotonic() < deadline, "the gauges never counted every outcome"
            assert not task.done(), task
            await asyncio.sleep(0.2)
    finally:
        await follower.stop()
    assert task.done()

    expected = LiveQuality(QualityLimits(window_outcomes=WINDOW))
    for r in records:
        expected.add(r)
    for window in expected.figures():
        labels = {"head": window.head, "model_version": "v1", "window": window.window}
        for name in QualityFigures.names():
            want, got = getattr(window.figures, name), sample(f"propensity_live_{name}", labels)
            assert got is not None, (name, labels)
            assert (math.isnan(want) and math.isnan(got)) or abs(got - want) < 1e-12, (name, labels)
    assert sample("propensity_live_outcomes", {**count_labels, "window": "count"}) == WINDOW
    skipped = "propensity_live_quality_skipped_total"
    assert sample(skipped, {"reason": "duplicate"}) == 5
    assert sample(skipped, {"reason": "not_json"}) == 1
    assert sample(skipped, {"reason": "bad_label"}) == 1


def test_the_worker_exports_live_quality_and_stops_cleanly(
    kafka_bootstrap: str, untrained_model: Path, tmp_path: Path, unique_name: str
) -> None:
    settings = worker_settings(
        unique_name,
        kafka_bootstrap,
        untrained_model,
        tmp_path,
        outcomes_topic=f"{unique_name}.outcomes",
        quality_interval_seconds=0.5,
    )
    ensure_topics(settings, service_topics(settings))
    records = random_records(50, seed=3)
    asyncio.run(
        send(kafka_bootstrap, settings.outcomes_topic, [(0, orjson.dumps(r)) for r in records])
    )
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 60
        line = 'propensity_live_outcomes{head="purchase",model_version="v1",window="count"} 50.0'
        while line not in worker.metrics():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.5)
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
