"""`propensity bench`: aiokafka ceiling vs do-nothing Faust agent vs the full pipeline.

All three read the same generated workload from the same broker. Throughput of (b) and (c) is
measured from first to last event (start-up excluded); (c)'s latencies come from the events
themselves: the input record's Kafka timestamp (produced) to the propensity record's (published).
"""

import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from model.simulate import simulate_n_events
from schemas.events import ShopEvent, decode_event
from schemas.exceptions import InvalidEvent
from streams.harness.broker import free_port
from streams.harness.producer import OutgoingRecord, live_events, record_for_event, send_records
from streams.harness.supervisor import start_worker
from streams.worker.admin import ensure_topics
from streams.worker.settings import Settings


@dataclass
class Workload:
    events: int = 300_000
    users: int = 20_000
    partitions: int = 8
    seed: int = 7


@dataclass
class StageResult:
    name: str
    events: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def machine() -> dict[str, Any]:
    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def workload_records(work: Workload, topic: str, live: bool = False) -> Iterator[OutgoingRecord]:
    """The workload as records. The events are generated up front: the simulator works in
    bursts, and generating while sending stalls the paced producer and skews latencies."""
    events: Iterable[ShopEvent] = [
        item.event for item in simulate_n_events(work.events, work.users, seed=work.seed)
    ]
    if live:
        events = live_events(events)
    return (record_for_event(event, (topic,)) for event in events)


async def _consume_all(bootstrap: str, topic: str, partitions: int, expected: int) -> StageResult:
    """(a) The ceiling: a plain aiokafka consumer reading and decoding every event."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=5000
    )
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    seen = invalid = 0
    first = 0.0
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000)
            if batch and not first:
                first = time.perf_counter()
            for messages in batch.values():
                for message in messages:
                    try:
                        decode_event(message.value)
                    except InvalidEvent:
                        invalid += 1
                seen += len(messages)
    finally:
        await consumer.stop()
    return StageResult(
        "aiokafka consume + decode (ceiling)",
        seen,
        time.perf_counter() - first,
        {"invalid": invalid},
    )


def _naive_faust(
    bootstrap: str, topic: str, partitions: int, expected: int, timeout: float
) -> StageResult:
    """(b) A Faust agent that does nothing with each event (standard kafka:// transport)."""
    with tempfile.TemporaryDirectory() as tmp:
        result, log = Path(tmp) / "result.json", Path(tmp) / "naive.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streams.harness.naive_worker",
                    bootstrap,
                    topic,
                    str(expected),
                    str(partitions),
                    str(result),
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        try:
            while not result.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            process.terminate()
            process.wait(30)
        if not result.exists():
            raise RuntimeError(f"naive Faust agent gave no result:\n{log.read_text()[-3000:]}")
        data = json.loads(result.read_text())
    return StageResult(
        "Faust agent doing nothing (naive)", data["events"], data["last"] - data["first"]
    )


async def _collect_outputs(
    bootstrap: str, topic: str, expected: int, timeout: float
) -> list[tuple[int, int]]:
    """(published ms, input produced ms) of every propensity event."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=5000,
    )
    await consumer.start()
    pairs: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(pairs) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for m in messages:
                    body = orjson.loads(m.value)
                    pairs.append((m.timestamp, body.get("input_ts") or m.timestamp))
    finally:
        await consumer.stop()
    return pairs


def _latencies(pairs: list[tuple[int, int]]) -> dict[str, float]:
    lat = np.array([out - inp for out, inp in pairs], dtype=np.float64)
    if lat.size == 0:
        return {}
    return {f"latency_p{q}_ms": float(np.percentile(lat, q)) for q in (50, 95, 99)}


def _worker_settings(
    base: Settings, bootstrap: str, topic: str, partitions: int, tag: str
) -> Settings:
    return replace(
        base,
        bootstrap_servers=bootstrap,
        app_id=f"bench-{tag}",
        input_topics=(topic,),
        output_topic=f"{topic}.propensities",
        dlq_topic=f"{topic}.dlq",
        outcomes_topic=f"{topic}.outcomes",
        partitions=partitions,
        metrics_port=free_port(),
        data_dir=Path(base.data_dir) / f"bench-{tag}",
        lag_interval_seconds=5.0,  # the default: its measurement is part of the load
        rebalance_timeout_seconds=3.0,
    )


def _pipeline(
    settings: Settings, expected: int, produce: Callable[[], None], timeout: float
) -> StageResult:
    """(c) The full worker; ``produce`` (sync) runs once the worker is ready."""
    worker = start_worker(settings, Path(settings.data_dir) / "worker.log")
    try:
        worker.wait_ready(timeout=120)
        produce()
        pairs = asyncio.run(
            _collect_outputs(settings.bootstrap, settings.output_topic, expected, timeout)
        )
        time.sleep(6.0)  # one lag/state measurement after the last event
        rss = worker.peak_rss_bytes()
        users = worker.metric_value("propensity_active_users") or 0.0
        state_bytes = worker.metric_value("propensity_state_bytes") or 0.0
        pending = worker.metric_value("propensity_outcome_pending") or 0.0
        pending_bytes = worker.metric_value("propensity_outcome_pending_bytes") or 0.0
    finally:
        worker.stop()
    published = [p[0] for p in pairs]
    seconds = (max(published) - min(published)) / 1000 if len(published) > 1 else 0.0
    extra = {
        "outputs": len(pairs),
        "peak_rss_bytes": rss,
        "state_bytes_per_user": state_bytes / users if users else None,
        "active_users": users,
        # the outcome join's table: bytes per prediction waiting for its label
        "pending_bytes_per_prediction": pending_bytes / pending if pending else None,
        "pending_predictions": pending,
        **_latencies(pairs),
    }
    return StageResult("full pipeline (score + publish)", len(pairs), seconds, extra)


def run_throughput(base: Settings, bootstrap: str, work: Workload) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    topic = f"bench-{tag}.events"
    settings = _worker_settings(base, bootstrap, topic, work.partitions, tag)
    ensure_topics(
        settings, [topic, settings.output_topic, settings.dlq_topic, settings.outcomes_topic]
    )
    load = asyncio.run(send_records(settings, workload_records(work, topic)))
    ceiling = asyncio.run(_consume_all(bootstrap, topic, work.partitions, work.events))
    naive = _naive_faust(bootstrap, topic, work.partitions, work.events, timeout=900)
    full = _pipeline(settings, work.events, lambda: None, timeout=900)
    return {
        "mode": "throughput",
        "workload": asdict(work),
        "produced_per_second": load.rate,
        "machine": machine(),
        "stages": [_stage_json(s) for s in (ceiling, naive, full)],
        "ratio_full_to_ceiling": full.rate / ceiling.rate if ceiling.rate else None,
        "ratio_full_to_naive": full.rate / naive.rate if naive.rate else None,
    }


def run_fixed_rate(base: Settings, bootstrap: str, work: Workload, rate: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    topic = f"bench-{tag}.events"
    settings = _worker_settings(base, bootstrap, topic, work.partitions, tag)
    ensure_topics(
        settings, [topic, settings.output_topic, settings.dlq_topic, settings.outcomes_topic]
    )

    records = workload_records(work, topic, live=True)  # generated now, stamped when sent

    def produce() -> None:
        # A thread keeps the offered rate steady while the collector reads the outputs.
        def send() -> None:
            asyncio.run(send_records(settings, records, rate=rate))

        threading.Thread(target=send, daemon=True).start()

    full = _pipeline(settings, work.events, produce, timeout=work.events / rate + 120)
    return {
        "mode": "fixed-rate",
        "offered_per_second": rate,
        "workload": asdict(work),
        "machine": machine(),
        "stages": [_stage_json(full)],
    }


def _stage_json(stage: StageResult) -> dict[str, Any]:
    return {
        "name": stage.name,
        "events": stage.events,
        "seconds": stage.seconds,
        "events_per_second": stage.rate,
        **stage.extra,
    }
