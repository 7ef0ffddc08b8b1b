"""Fault drill: SIGKILL the worker and add a second one mid-stream, then count lost input,
changed scores, lost outcomes and changed labels against a clean run of the same records.

The clean scoring runs the worker's own batch step (streams.worker.scoring_step) over the
input topic read back in partition order, with a fresh state table: what one worker that
never stopped would have published. The clean labels are training's (model.serving.labels)
on the same events. Once the input is sent, one late "clock" event per partition moves every
watermark past every horizon, so each event's outcome is due. Used by `propensity bench
--chaos` (big, prints figures) and by the integration tests (small, asserts zero).
"""

import asyncio
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from model.serving.export import load_model
from model.serving.labels import label_user
from model.serving.scorer import SequenceScorer
from model.simulate import simulate_n_events
from schemas.events import EVENT_TYPE_INDEX, ShopEvent
from streams.harness.broker import free_port
from streams.harness.producer import OutgoingRecord, SendStats, record_for_event, send_records
from streams.harness.supervisor import WorkerProcess, start_worker
from streams.worker.admin import ensure_topics, service_topics
from streams.worker.kafka_security import aiokafka_options
from streams.worker.scoring_step import InputRecord, StepConfig, score_batch
from streams.worker.settings import Settings

Scores = tuple[float, float | None, int]  # purchase, cart_abandon, cart_items


class ConsumedRecord(Protocol):
    """What the drill and its tests read of a consumed record: aiokafka's ConsumerRecord has
    all of it. The drill's topics carry no tombstones, so ``value`` is always there."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int
    headers: Sequence[tuple[str, bytes]]


_RESTART_T0 = 1_733_300_000_000  # event time of the restart drill's events


@dataclass
class ChaosPlan:
    events: int = 150_000
    users: int = 2_000
    kills: int = 6
    second_worker: bool = True  # a second worker joins the group after the kills
    rate: float = 5_000.0  # events per second offered
    seed: int = 11


@dataclass
class ChaosReport:
    events: int = 0
    kills: int = 0
    workers_started: int = 0
    outputs: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    missing: list[str] = field(default_factory=list)
    changed: int = 0  # outputs whose scores differ from the clean run's by more than 1e-6
    changed_users: int = 0
    first_changed: dict[int, int] = field(default_factory=dict)  # partition -> lowest offset
    max_abs_delta: float = 0.0
    ready_seconds: list[float] = field(default_factory=list)  # process start -> ready
    users: int = 0  # distinct users in the input
    active_users: list[int] = field(default_factory=list)  # the gauge of each worker at the end
    exit_codes: list[int] = field(default_factory=list)
    outcomes: int = 0  # outcome records read (duplicates included)
    outcome_duplicates: int = 0  # records of an event id seen before (allowed: at least once)
    outcomes_missing: list[str] = field(default_factory=list)  # events without an outcome
    labels_changed: int = 0  # outcomes whose labels differ from training's on the same events

    def lines(self) -> list[str]:
        ready = ", ".join(f"{s:.1f}" for s in self.ready_seconds)
        return [
            f"events {self.events:,}, SIGKILLs {self.kills}, workers started "
            f"{self.workers_started}",
            f"propensities {self.outputs:,} ({self.duplicates:,} duplicates), dead letters "
            f"{self.dead_letters}",
            f"no propensity when the drill stopped waiting: {len(self.missing)}",
            f"scores differing from a clean run by > 1e-6: {self.changed:,} "
            f"({self.changed_users} users), max |delta| {self.max_abs_delta:.2g}",
            f"first changed input offset per partition: {dict(sorted(self.first_changed.items()))}",
            f"start -> ready per worker (s): {ready}",
            f"users {self.users:,}; propensity_active_users per worker at the end: "
            f"{self.active_users}",
            f"exit status of the workers stopped at the end: {self.exit_codes}",
            f"outcomes {self.outcomes:,} ({self.outcome_duplicates:,} duplicates), events"
            f" without an outcome {len(self.outcomes_missing)}, labels differing from training's"
            f" {self.labels_changed}",
        ]


def chaos_records(plan: ChaosPlan, topic: str) -> list[OutgoingRecord]:
    """Simulated shoppers' events, each with a unique event id, keyed by user."""
    events = [item.event for item in simulate_n_events(plan.events, plan.users, seed=plan.seed)]
    return [record_for_event(replace(e, event_id=f"e{i}"), (topic,)) for i, e in enumerate(events)]


async def read_topic(
    settings: Settings,
    topics: list[str],
    done: Callable[[list[ConsumedRecord]], bool],
    timeout: float,
) -> list[ConsumedRecord]:
    """Every record of ``topics`` from the start, until ``done(records)`` or the timeout."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **aiokafka_options(settings),
    )
    await consumer.start()
    found: list[ConsumedRecord] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(found):
            for batch in (await consumer.getmany(timeout_ms=300, max_records=5000)).values():
                found.extend(batch)
    finally:
        await consumer.stop()
    return found


def clean_scores(settings: Settings, inputs: list[ConsumedRecord]) -> dict[tuple[int, int], Scores]:
    """(partition, offset) -> scores of one uninterrupted worker, via the worker's batch step."""
    model = load_model(settings.model_path)
    scorer = SequenceScorer(model, window_size=settings.window_size, ttl_ms=settings.user_ttl_ms)
    config = StepConfig(
        max_event_bytes=settings.max_event_bytes,
        horizon_ms=model.meta.horizon_ms,
        max_future_ms=settings.max_future_skew_ms,
    )
    table: dict[str, bytes] = {}
    scores: dict[tuple[int, int], Scores] = {}
    by_partition: dict[int, list[ConsumedRecord]] = {}
    for m in inputs:
        by_partition.setdefault(m.partition, []).append(m)
    for partition in sorted(by_partition):
        records = sorted(by_partition[partition], key=lambda m: m.offset)
        for start in range(0, len(records), 256):
            batch = [
                InputRecord(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp, 0.0)
                for m in records[start : start + 256]
            ]
            result = score_batch(batch, table.get, scorer, config, int(time.time() * 1000))
            for user, (_, state) in result.states.items():
                table[user] = state
            for s in result.scored:
                score = s.score
                position = (s.record.partition, s.record.offset)
                scores[position] = (score.purchase, score.cart_abandon, score.cart_items)
    return scores


def clock_records(settings: Settings, after_ms: int) -> list[OutgoingRecord]:
    """One event per partition, dated ``after_ms``: every partition's watermark passes it."""
    partitioner = DefaultPartitioner()
    partitions = list(range(settings.partitions))
    users: dict[int, str] = {}
    for i in range(100 * settings.partitions):
        user = f"clock-{i}"
        users.setdefault(partitioner(user.encode(), partitions, None), user)
    topics = (settings.input_topics[0],)
    return [
        record_for_event(ShopEvent("view", user, "clock", after_ms, f"clock-{p}"), topics)
        for p, user in sorted(users.items())
    ]


def clean_labels(
    inputs: list[ConsumedRecord], reference: dict[tuple[int, int], Scores], horizon_ms: int
) -> dict[str, tuple[int, int | None]]:
    """event id -> (purchase, cart_abandon) labels as training gives them on the same events:
    each user's events in time order (ties in input order), cart sizes from the clean run."""
    by_user: dict[str, list[tuple[int, int, int, str]]] = {}
    for m in sorted(inputs, key=lambda m: (m.partition, m.offset)):
        body = orjson.loads(m.value)
        position = (m.partition, m.offset)
        if position not in reference:
            continue
        row = (body["ts"], EVENT_TYPE_INDEX[body["event_type"]], reference[position][2])
        by_user.setdefault(body["user_id"], []).append((*row, body["event_id"]))
    labels: dict[str, tuple[int, int | None]] = {}
    for events in by_user.values():
        events.sort(key=lambda e: e[0])
        ts, types, carts, ids = (np.array(column) for column in zip(*events, strict=True))
        user = label_user(ts, types, carts, horizon_ms=horizon_ms, data_end_ms=int(ts.max()))
        for i, event_id in enumerate(ids):
            bought = int(user.purchase_within_horizon[i])
            labels[str(event_id)] = (bought, 1 - bought if carts[i] > 0 else None)
    return labels


def compare_outcomes(
    report: ChaosReport,
    outcomes: list[ConsumedRecord],
    expected: dict[str, tuple[int, int | None]],
) -> None:
    """Fill ``report`` with lost outcomes and changed labels (duplicates counted, allowed)."""
    seen: set[str] = set()
    report.outcomes = len(outcomes)
    for m in outcomes:
        body = orjson.loads(m.value)
        event_id = body["event_id"]
        report.outcome_duplicates += event_id in seen
        seen.add(event_id)
        got = (body["labels"]["purchase"], body["labels"]["cart_abandon"])
        if event_id in expected and got != expected[event_id]:
            report.labels_changed += 1
    report.outcomes_missing = sorted(set(expected) - seen)


def _scores_of(message: dict[str, Any]) -> Scores:
    return (
        message["scores"]["purchase"],
        message["scores"]["cart_abandon"],
        message["cart_items"],
    )


def compare(
    report: ChaosReport,
    inputs: list[ConsumedRecord],
    outputs: list[ConsumedRecord],
    dead: list[ConsumedRecord],
    reference: dict[tuple[int, int], Scores],
) -> None:
    """Fill ``report`` with what was lost and what changed (outputs matched by event id)."""
    position = {orjson.loads(m.value)["event_id"]: (m.partition, m.offset) for m in inputs}
    report.outputs = len(outputs)
    report.dead_letters = len(dead)
    seen: set[str] = set()
    users: set[str] = set()
    for m in outputs:
        body = orjson.loads(m.value)
        event_id = body["event_id"]
        report.duplicates += event_id in seen
        seen.add(event_id)
        want = reference[position[event_id]]
        got = _scores_of(body)
        delta = abs(got[0] - want[0])
        if want[1] is not None and got[1] is not None:
            delta = max(delta, abs(got[1] - want[1]))
        if (got[1] is None) != (want[1] is None) or got[2] != want[2]:
            delta = math.inf
        report.max_abs_delta = max(report.max_abs_delta, delta)
        if delta > 1e-6:
            report.changed += 1
            users.add(body["user_id"])
            partition, offset = position[event_id]
            first = report.first_changed.get(partition, offset)
            report.first_changed[partition] = min(first, offset)
    report.changed_users = len(users)
    report.missing = sorted(set(position) - seen)


def run_chaos(settings: Settings, plan: ChaosPlan, workdir: Path) -> ChaosReport:
    """Stream ``plan.events`` at ``plan.rate`` while killing the worker ``plan.kills`` times."""
    report = ChaosReport()
    ensure_topics(settings, service_topics(settings))
    records = chaos_records(plan, settings.input_topics[0])
    report.events = len(records)
    sent = SendStats()
    producer = threading.Thread(
        target=lambda: asyncio.run(send_records(settings, records, rate=plan.rate, stats=sent)),
        daemon=True,
    )

    def wait_for_progress(share: float, worker: WorkerProcess) -> None:
        """Until ``share`` of the input is sent and ``worker`` has scored a slice since."""
        while sent.sent < share * len(records):
            time.sleep(0.02)
        _wait_for_metric(worker, "propensity_scoring_batch_size_count", 1)

    def launch(name: str, metrics_port: int) -> WorkerProcess:
        started = time.monotonic()
        worker = start_worker(replace(settings, metrics_port=metrics_port), workdir / name)
        worker.wait_ready(180)
        report.ready_seconds.append(time.monotonic() - started)
        report.workers_started += 1
        return worker

    worker = launch("worker-0.log", settings.metrics_port)
    producer.start()
    running: list[WorkerProcess] = [worker]
    try:
        for kill in range(plan.kills):
            wait_for_progress((kill + 1) / (plan.kills + 1.5), worker)
            worker.process.kill()  # SIGKILL: no shutdown, no final commit
            worker.process.wait()
            report.kills += 1
            running.remove(worker)
            worker = launch(f"worker-{kill + 1}.log", settings.metrics_port)
            running.append(worker)
        if plan.second_worker:
            wait_for_progress((plan.kills + 0.5) / (plan.kills + 1.5), worker)
            running.append(launch("worker-second.log", free_port()))
        producer.join()
        horizon_ms = load_model(settings.model_path).meta.horizon_ms
        lateness_ms = settings.outcome_allowed_lateness_seconds * 1000
        newest = max(orjson.loads(r.value)["ts"] for r in records)
        clocks = clock_records(settings, newest + horizon_ms + lateness_ms + 2)
        asyncio.run(send_records(settings, clocks))
        inputs = asyncio.run(
            read_topic(
                settings,
                list(settings.input_topics),
                lambda f: len(f) >= len(records) + len(clocks),
                120,
            )
        )
        ids = {orjson.loads(m.value)["event_id"] for m in inputs}
        timeout = max(120.0, 3 * len(records) / plan.rate)
        outputs = asyncio.run(
            read_topic(settings, [settings.output_topic], _covering(ids), timeout)
        )
        # Whatever reached the dead-letter topic (none expected), read for a few seconds.
        dead = asyncio.run(read_topic(settings, [settings.dlq_topic], lambda f: False, 3))
        real = {orjson.loads(r.value)["event_id"] for r in records}
        outcomes = asyncio.run(
            read_topic(settings, [settings.outcomes_topic], _covering(real), timeout)
        )
        report.users = len({m.key for m in inputs})
        time.sleep(settings.lag_interval_seconds + 1.0)  # the gauges are set on that timer
        report.active_users = [int(w.metric_value("propensity_active_users") or 0) for w in running]
    finally:
        for w in running:
            report.exit_codes.append(w.stop())
    save_jsonl(workdir / "inputs.jsonl", inputs)
    save_jsonl(workdir / "outputs.jsonl", outputs)
    save_jsonl(workdir / "outcomes.jsonl", outcomes)
    reference = clean_scores(settings, inputs)
    compare(report, inputs, outputs, dead, reference)
    expected = clean_labels(inputs, reference, horizon_ms)
    compare_outcomes(report, outcomes, {k: v for k, v in expected.items() if k in real})
    return report


def save_jsonl(path: Path, records: list[ConsumedRecord]) -> None:
    """The drill's records as JSON lines (partition, offset, event id, scores) for diagnosis."""
    with path.open("wb") as out:
        for m in records:
            body = orjson.loads(m.value)
            line: dict[str, Any] = {
                "partition": m.partition,
                "offset": m.offset,
                "event_id": body.get("event_id"),
                "user_id": body.get("user_id"),
            }
            if "labels" in body:
                line["labels"] = body["labels"]
                line["resolved_by"] = body["resolved_by"]
            elif "scores" in body:
                line["scores"] = _scores_of(body)
            out.write(orjson.dumps(line) + b"\n")


def _covering(ids: set[str]) -> Callable[[list[ConsumedRecord]], bool]:
    """A ``done`` test for read_topic: every id has at least one record (by event id)."""
    seen: set[str] = set()
    read = 0

    def done(found: list[ConsumedRecord]) -> bool:
        nonlocal read
        seen.update(orjson.loads(m.value)["event_id"] for m in found[read:])
        read = len(found)
        return seen >= ids

    return done


def _wait_for_metric(
    worker: WorkerProcess, name: str, value: float, timeout: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout
    while (worker.metric_value(name) or 0) < value:
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not reach {value} in {timeout}s")
        time.sleep(0.02)


def drill_settings(base: Settings, bootstrap: str, partitions: int, workdir: Path) -> Settings:
    """Settings of a drill worker: fresh topics and group, a free metrics port."""
    name = f"chaos-{uuid.uuid4().hex[:8]}"
    return replace(
        base,
        bootstrap_servers=bootstrap,
        app_id=name,
        input_topics=(f"{name}.events",),
        output_topic=f"{name}.propensities",
        dlq_topic=f"{name}.dlq",
        outcomes_topic=f"{name}.outcomes",
        partitions=partitions,
        metrics_port=free_port(),
        data_dir=workdir / name,
        lag_interval_seconds=1.0,
    )


def run_chaos_bench(
    base: Settings, bootstrap: str, plan: ChaosPlan, partitions: int, workdir: Path
) -> dict[str, Any]:
    """Two legs of the drill on fresh topics: changelog ends confirmed by a fetch (the default)
    and trusted as the broker reports them, which isolates a broker that under-reports."""
    legs: dict[str, Any] = {}
    for leg, verify in (("changelog end checked", True), ("changelog end as reported", False)):
        settings = drill_settings(base, bootstrap, partitions, workdir)
        settings = replace(settings, verify_changelog_end=verify)
        report = run_chaos(settings, plan, workdir / settings.app_id)
        legs[leg] = {**asdict(report), "missing": len(report.missing), "lines": report.lines()}
    return {"plan": asdict(plan), "partitions": partitions, "legs": legs}


@dataclass
class RestartReport:
    users: int
    first_start_seconds: float  # process start -> ready, empty table
    restart_seconds: float  # process start after a SIGKILL -> ready, table of `users` states
    users_after_restart: int

    def lines(self) -> list[str]:
        return [
            f"first start -> ready: {self.first_start_seconds:.1f} s",
            f"{self.users:,} users in the table; SIGKILL; new worker start -> ready: "
            f"{self.restart_seconds:.1f} s ({self.users_after_restart:,} users after)",
        ]


def run_restart(settings: Settings, users: int, workdir: Path) -> RestartReport:
    """Fill the table with one event per user, SIGKILL the worker, time its successor."""
    ensure_topics(settings, service_topics(settings))
    started = time.monotonic()
    worker = start_worker(settings, workdir / "first.log")
    worker.wait_ready(300)
    first = time.monotonic() - started
    records = [
        record_for_event(
            ShopEvent("view", f"u{i}", "item", _RESTART_T0 + i), (settings.input_topics[0],)
        )
        for i in range(users)
    ]
    asyncio.run(send_records(settings, records))
    _wait_for_metric(worker, "propensity_propensities_published_total", users, timeout=600)
    worker.process.kill()
    worker.process.wait()
    started = time.monotonic()
    successor = start_worker(settings, workdir / "restart.log")
    try:
        successor.wait_ready(600)
        restart = time.monotonic() - started
        time.sleep(settings.lag_interval_seconds + 1.0)  # the gauge is set on that timer
        after = int(successor.metric_value("propensity_active_users") or 0)
    finally:
        successor.stop()
    return RestartReport(users, first, restart, after)
