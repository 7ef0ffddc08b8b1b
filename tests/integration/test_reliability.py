"""Promises under faults, against a real broker: SIGKILLs, a second worker joining, a fault in
scoring, and hostile input mixed with valid events.

Scores are compared with a clean scoring of the same records by the worker's own batch step
(streams.harness.drills.clean_scores). The embedded Tansu under-reports changelog end offsets;
the worker confirms them with a fetch (Settings.verify_changelog_end, on by default), so table
recovery is complete here too and the assertions are exact.
"""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.harness.drills import ChaosPlan, ChaosReport, read_topic, run_chaos
from streams.harness.producer import OutgoingRecord, send_records
from streams.harness.supervisor import WorkerProcess
from streams.worker.admin import ensure_topics, service_topics
from tests.kafka_helpers import start_worker, worker_settings

pytestmark = pytest.mark.integration
T0 = 1_733_300_000_000


def assert_nothing_lost_or_changed(report: ChaosReport) -> None:
    assert not report.missing, f"{len(report.missing)} lost, e.g. {report.missing[:5]}"
    assert report.changed == 0, "\n".join(report.lines())
    assert report.dead_letters == 0
    missing = report.outcomes_missing
    assert not missing, f"{len(missing)} outcomes lost, e.g. {missing[:5]}"
    assert report.labels_changed == 0, "\n".join(report.lines())


def test_sigkills_lose_nothing_and_change_no_score(
    kafka_bootstrap: str, untrained_model: Path, tmp_path: Path, unique_name: str
) -> None:
    settings = worker_settings(
        unique_name, kafka_bootstrap, untrained_model, tmp_path, session_timeout_seconds=6.0
    )
    plan = ChaosPlan(events=6000, users=300, kills=3, second_worker=False, rate=500.0)
    report = run_chaos(settings, plan, tmp_path)
    print("\n".join(report.lines()))
    assert report.kills == 3
    assert_nothing_lost_or_changed(report)


def test_a_second_worker_joining_changes_no_score(
    kafka_bootstrap: str, untrained_model: Path, tmp_path: Path, unique_name: str
) -> None:
    settings = worker_settings(
        unique_name, kafka_bootstrap, untrained_model, tmp_path, session_timeout_seconds=6.0
    )
    plan = ChaosPlan(events=5000, users=300, kills=0, second_worker=True, rate=400.0)
    report = run_chaos(settings, plan, tmp_path)
    print("\n".join(report.lines()))
    assert report.workers_started == 2
    assert_nothing_lost_or_changed(report)
    # Each user counted once across the two workers: standby replicas are not counted.
    assert sum(report.active_users) == report.users and min(report.active_users) > 0


def events(start: int, stop: int, user: str | None = None) -> list[OutgoingRecord]:
    out = []
    for i in range(start, stop):
        who = user or f"user-{i % 37}"
        body = {
            "event_id": f"e{i}",
            "event_type": "view",
            "user_id": who,
            "item_id": "i",
            "ts": T0 + i * 1000,
        }
        out.append(OutgoingRecord("", who.encode(), orjson.dumps(body)))
    return out


def ids_of(found: list[Any]) -> set[str]:
    return {orjson.loads(m.value)["event_id"] for m in found}


def test_a_scoring_fault_stops_the_worker_and_its_successor_loses_nothing(
    kafka_bootstrap: str, untrained_model: Path, tmp_path: Path, unique_name: str
) -> None:
    settings = worker_settings(unique_name, kafka_bootstrap, untrained_model, tmp_path)
    ensure_topics(settings, service_topics(settings))
    topic = settings.input_topics[0]
    log = tmp_path / "faulty.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.faulty_worker"],
            env={**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    faulty = WorkerProcess(process, log, settings.metrics_port)
    faulty.wait_ready()
    batches = [events(0, 300), events(300, 301, user="boom"), events(301, 600)]
    for batch in batches:
        records = [OutgoingRecord(topic, r.key, r.value) for r in batch]
        asyncio.run(send_records(settings, records))
    assert process.wait(60) == 70, faulty.log()[-3000:]
    assert "stopping the worker: RuntimeError: injected scoring fault" in faulty.log()

    successor = start_worker(settings, tmp_path / "successor.log")
    try:
        successor.wait_ready()
        wanted = {f"e{i}" for i in range(600)}
        outputs = asyncio.run(
            read_topic(settings, [settings.output_topic], lambda f: ids_of(f) >= wanted, 90)
        )
        assert ids_of(outputs) >= wanted, f"lost: {sorted(wanted - ids_of(outputs))[:5]}"
    finally:
        assert successor.stop() == 0, successor.log()[-3000:]


def hostile_payloads(now_ms: int) -> list[tuple[bytes, bytes, str]]:
    """(key, value, expected dead-letter reason): a few hundred ways to break the contract."""

    def body(**fields: object) -> dict[str, object]:
        base: dict[str, object] = {"event_type": "view", "user_id": "h", "item_id": "i", "ts": T0}
        base.update(fields)
        return {k: v for k, v in base.items() if v is not ...}

    cases: list[tuple[dict[str, object] | bytes, str]] = [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b"[1,2,3]", "not_an_object"),
        (b'"a string"', "not_an_object"),
        (b"1e400", "invalid_json"),
        (body(user_id=...), "missing_field"),
        (body(ts=...), "missing_field"),
        (body(user_id=""), "missing_field"),
        (body(event_type="checkout"), "unknown_event_type"),
        (body(price=1e300), "out_of_range"),
        (body(price=-1), "out_of_range"),
        (body(quantity=0), "out_of_range"),
        (body(quantity=2.5), "wrong_type"),
        (body(item_id=2**64), "out_of_range"),
        (body(item_id=1e30), "out_of_range"),
        (body(item_id=[1]), "wrong_type"),
        (body(ts=1_733_300_000), "bad_timestamp"),
        (body(ts=T0 + 0.5), "bad_timestamp"),
        (body(ts=now_ms + 86_400_000), "bad_timestamp"),
        (body(ts="yesterday"), "bad_timestamp"),
        (body(ts=None), "bad_timestamp"),
        (body(user_id="h\x00"), "control_character"),
        (body(item_id="i\r\n"), "control_character"),
        (body(event_id="\x1b[2J"), "control_character"),
        (body(category="x" * 20_000), "oversized"),
    ]
    out: list[tuple[bytes, bytes, str]] = []
    for _ in range(12):  # each case a dozen times, each with its own event id
        for payload, reason in cases:
            if isinstance(payload, dict):  # its own event_id, if it has one, wins
                value = json.dumps({"event_id": f"h{len(out)}", **payload}).encode()
            else:
                value = payload
            key = b"h"
            out.append((key, value, reason))
    out.append((b"someone-else", orjson.dumps(body(event_id="mismatch")), "key_mismatch"))
    out.append((b"h", b"x" * 300_000, "oversized"))
    return out


def test_hostile_input_mixed_with_valid_events(
    kafka_bootstrap: str, untrained_model: Path, tmp_path: Path, unique_name: str
) -> None:
    import time

    from tests.kafka_helpers import produce

    settings = worker_settings(unique_name, kafka_bootstrap, untrained_model, tmp_path)
    ensure_topics(settings, service_topics(settings))
    topic = settings.input_topics[0]
    hostile = hostile_payloads(int(time.time() * 1000))
    valid = [(r.key, r.value) for r in events(0, 2000)]
    # The reproduction of the lost batch: integral floats, which are integers by the contract.
    floats = [
        (
            b"f",
            b'{"event_id":"f%d","event_type":"add_to_cart","user_id":"f","item_id":"i",'
            b'"ts":%d.0,"quantity":2.0}' % (i, T0 + i),
        )
        for i in range(20)
    ]
    mixed: list[tuple[bytes, bytes, str | None]] = [(k, v, None) for k, v in valid + floats]
    for i, item in enumerate(hostile):  # spread the hostile records through the stream
        mixed.insert((i * 7) % len(mixed), item)
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        positions = asyncio.run(produce(kafka_bootstrap, [(topic, k, v) for k, v, _ in mixed]))
        wanted = {orjson.loads(v)["event_id"] for k, v, r in mixed if r is None}
        outputs = asyncio.run(
            read_topic(settings, [settings.output_topic], lambda f: ids_of(f) >= wanted, 90)
        )
        dead = asyncio.run(
            read_topic(settings, [settings.dlq_topic], lambda f: len(f) >= len(hostile), 60)
        )
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
    assert ids_of(outputs) == wanted and len(outputs) == len(wanted) == 2020
    assert all(0.0 <= orjson.loads(m.value)["scores"]["purchase"] <= 1.0 for m in outputs)
    expected = {
        (partition, offset): reason
        for (_, partition, offset), (_, _, reason) in zip(positions, mixed, strict=True)
        if reason is not None
    }
    got = {}
    for m in dead:
        headers = dict(m.headers)
        got[(int(headers["dlq.source.partition"]), int(headers["dlq.source.offset"]))] = headers[
            "dlq.reason"
        ].decode()
        assert len(m.value) <= settings.max_event_bytes
    assert got == expected
