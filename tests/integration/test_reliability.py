"""Promises under faults, against a real broker: SIGKILLs, a second worker joining, a fault in
scoring, and hostile input mixed with valid events.

Scores are compared with a clean scoring of the same records by the worker's own batch step
(streams.chaos.clean_scores). The embedded Tansu under-reports changelog end offsets; the worker
confirms them with a fetch (Settings.verify_changelog_end, on by default), so table recovery
is complete here too and the assertions are exact.
"""

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.admin import ensure_topics, service_topics
from streams.chaos import ChaosPlan, ChaosReport, read_topic, run_chaos
from streams.producer import OutgoingRecord, send_records
from streams.supervisor import WorkerProcess
from tests.kafka_helpers import start_worker, worker_settings

pytestmark = pytest.mark.integration
T0 = 1_733_300_000_000


def assert_nothing_lost_or_changed(report: ChaosReport) -> None:
    assert not report.missing, f"{len(report.missing)} lost, e.g. {report.missing[:5]}"
    assert report.changed == 0, "\n".join(report.lines())
    assert report.dead_letters == 0


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
