"""Offline/online parity: replaying a file through the worker gives the offline scores."""

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from model.importers import read_events_jsonl
from model.serving.export import load_model
from model.serving.scorer import SequenceScorer, score_offline
from model.simulate import SimulationConfig, simulate, write_jsonl
from streams.worker.admin import ensure_topics, service_topics
from tests.kafka_helpers import collect, start_worker, worker_settings

pytestmark = pytest.mark.integration


def test_replayed_file_scores_equal_offline_scores(
    kafka_bootstrap: str, untrained_model: Path, tmp_path: Path, unique_name: str
) -> None:
    events_file = tmp_path / "events.jsonl"
    sim = SimulationConfig(n_users=150, days=2.0, seed=11, with_oracle=False)
    count = write_jsonl(simulate(sim), events_file)
    assert count > 500
    settings = worker_settings(
        unique_name, kafka_bootstrap, untrained_model, tmp_path, partitions=3, window_size=16
    )  # one input topic: per-user order = file order; a small window exercises truncation
    ensure_topics(settings, service_topics(settings))
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        replay = subprocess.run(
            [sys.executable, "-m", "streams.cli", "replay", str(events_file)],
            env={**settings.to_env(), "PATH": ""},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert replay.returncode == 0, replay.stderr
        assert f"sent {count} records" in replay.stdout
        outputs = asyncio.run(
            collect(kafka_bootstrap, [settings.output_topic], expected=count, timeout=120)
        )
    finally:
        worker.stop()

    events = list(read_events_jsonl(events_file))
    scorer = SequenceScorer(
        load_model(untrained_model), window_size=16, ttl_ms=settings.user_ttl_ms
    )
    offline = {e.event_id: s for e, s in zip(events, score_offline(scorer, events), strict=True)}
    online = {orjson.loads(m.value)["event_id"]: orjson.loads(m.value)["scores"] for m in outputs}
    assert set(online) == set(offline)
    worst = 0.0
    for event_id, score in offline.items():
        got = online[event_id]
        worst = max(worst, abs(got["purchase"] - score.purchase))
        assert (got["cart_abandon"] is None) == (score.cart_abandon is None)
        if score.cart_abandon is not None:
            worst = max(worst, abs(got["cart_abandon"] - score.cart_abandon))
    assert worst < 1e-5, worst
