"""The scoring step without a broker: records in, outputs, dead letters and states out; the
metrics observe its typed result. (Redelivery and non-finite scores: test_redelivery.py.)"""

from pathlib import Path

import orjson
import pytest

from model.serving.export import load_model
from model.serving.scorer import SequenceScorer
from streams.worker.metrics import WorkerMetrics
from streams.worker.scoring_step import BatchResult, InputRecord, StepConfig, score_batch

T0 = 1_733_300_000_000
NOW = T0 + 60_000
CONFIG = StepConfig(max_event_bytes=16_384, horizon_ms=3_600_000)


@pytest.fixture(scope="module")
def scorer(untrained_model: Path) -> SequenceScorer:
    return SequenceScorer(load_model(untrained_model))


def event(user: str, kind: str, step: int, **extra: object) -> bytes:
    body = {"event_type": kind, "user_id": user, "item_id": "i1", "ts": T0 + step * 1000}
    return orjson.dumps({**body, **extra})


def record(partition: int, offset: int, key: bytes, value: bytes) -> InputRecord:
    return InputRecord("clicks", partition, offset, key, value, T0, NOW / 1000)


class Table:
    """The state reader: stored bytes per user, and which users were read."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.reads: list[str] = []

    def get(self, user: str) -> bytes | None:
        self.reads.append(user)
        return self.data.get(user)

    def store(self, result: BatchResult) -> None:
        for user, new in result.states.items():
            self.data[user] = new.state


def mixed_batch() -> list[InputRecord]:
    return [
        record(0, 0, b"u1", event("u1", "view", 0)),
        record(0, 1, b"u1", event("u1", "add_to_cart", 1, event_id="e2")),
        record(1, 0, b"u2", b"{broken"),
        record(1, 1, b"u2", event("u3", "view", 2)),  # keyed by another user
        record(1, 2, b"u2", event("u2", "purchase", 3)),
    ]


def test_every_record_ends_as_one_output_dead_letter_or_state(scorer: SequenceScorer) -> None:
    table = Table()
    records = mixed_batch()
    result = score_batch(records, table.get, scorer, CONFIG, NOW)

    assert result.size == len(records) and not result.redelivered
    assert [(s.record.partition, s.record.offset) for s in result.scored] == [
        (0, 0),
        (0, 1),
        (1, 2),
    ]
    bodies = [orjson.loads(s.output.value or b"") for s in result.scored]
    assert [s.output.key for s in result.scored] == [b"u1", b"u1", b"u2"]
    assert [b["event_id"] for b in bodies] == ["clicks/0/0", "e2", "clicks/1/2"]
    for scored, body in zip(result.scored, bodies, strict=True):
        assert body["scores"] == {
            "purchase": scored.score.purchase,
            "cart_abandon": scored.score.cart_abandon,
        }
        assert body["cart_items"] == scored.score.cart_items
        assert body["horizon_ms"] == CONFIG.horizon_ms and body["scored_at"] == NOW
        assert body["model_version"] == scorer.model_version
    assert result.scored[1].score.cart_abandon is not None

    assert [d.reason for d in result.dead_letters] == ["invalid_json", "key_mismatch"]
    for dead in result.dead_letters:
        headers = dict(dead.output.headers or [])
        assert headers["dlq.reason"] == dead.reason.encode()
        assert dead.output.value == dead.record.value and dead.output.key == b"u2"

    assert {user: new.partition for user, new in result.states.items()} == {"u1": 0, "u2": 1}
    assert table.reads == ["u1", "u2"]  # once per user with a valid event


def test_the_next_batch_reads_the_stored_states(scorer: SequenceScorer) -> None:
    table = Table()
    records = mixed_batch()
    whole = score_batch(records, Table().get, scorer, CONFIG, NOW)
    first = score_batch(records[:1], table.get, scorer, CONFIG, NOW)  # u1's first event
    table.store(first)
    second = score_batch(records[1:], table.get, scorer, CONFIG, NOW)
    split = [s.score.purchase for s in first.scored + second.scored]
    # Batches of other shapes sum in another order: equal up to float rounding.
    assert split == pytest.approx([s.score.purchase for s in whole.scored], abs=1e-6, rel=0)
    table.store(second)
    assert table.data.keys() == whole.states.keys()


def test_a_late_event_is_counted_as_a_rebuild(scorer: SequenceScorer) -> None:
    table = Table()
    table.store(
        score_batch([record(0, 0, b"u1", event("u1", "view", 5))], table.get, scorer, CONFIG, NOW)
    )
    late = score_batch(
        [record(0, 1, b"u1", event("u1", "view", 1))], table.get, scorer, CONFIG, NOW
    )
    assert late.rebuilds == 1 and len(late.scored) == 1


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_the_metrics_observe_the_typed_result(scorer: SequenceScorer) -> None:
    table = Table()
    records = mixed_batch()
    first = score_batch(records, table.get, scorer, CONFIG, NOW)
    table.store(first)
    again = score_batch(records[:2], table.get, scorer, CONFIG, NOW)  # redelivered
    metrics = WorkerMetrics()
    for result in (first, again):
        metrics.observe_batch(result, 0.002)
        metrics.observe(result, published_at=NOW / 1000 + 0.5)

    assert (
        sample(metrics, "propensity_events_consumed_total", topic="clicks", event_type="view") == 1
    )
    assert (
        sample(metrics, "propensity_events_consumed_total", topic="clicks", event_type="invalid")
        == 2
    )
    assert (
        sample(
            metrics, "propensity_events_consumed_total", topic="clicks", event_type="redelivered"
        )
        == 2
    )
    assert sample(metrics, "propensity_invalid_events_total", reason="key_mismatch") == 1
    assert sample(metrics, "propensity_dlq_writes_total", reason="invalid_json") == 1
    assert sample(metrics, "propensity_redelivered_events_total") == 2
    assert sample(metrics, "propensity_propensities_published_total") == 3
    assert sample(metrics, "propensity_internal_errors_total") == 0
    assert sample(metrics, "propensity_score_count", head="purchase") == 3
    assert sample(metrics, "propensity_score_count", head="cart_abandon") == 1
    assert sample(metrics, "propensity_processing_latency_seconds_sum") == pytest.approx(1.5)
    assert sample(metrics, "propensity_scoring_batch_size_sum") == 5 + 2
    assert sample(metrics, "propensity_scoring_batch_duration_seconds_count") == 2


def test_the_propensity_states_the_cart_after_its_event(scorer: SequenceScorer) -> None:
    """Cart items and value after each event, step by step and in one batch alike."""
    batch = [
        record(0, 0, b"u", event("u", "add_to_cart", 0, price=10.0, quantity=2)),
        record(0, 1, b"u", event("u", "add_to_cart", 1, item_id="i2", price=2.5)),
        record(0, 2, b"u", event("u", "remove_from_cart", 2)),
        record(0, 3, b"u", event("u", "purchase", 3, item_id="i2", price=2.5)),
    ]
    expected = [(1, 20.0), (2, 22.5), (1, 2.5), (0, 0.0)]
    whole = score_batch(batch, Table().get, scorer, CONFIG, NOW)
    table = Table()
    one_by_one = []
    for r in batch:
        result = score_batch([r], table.get, scorer, CONFIG, NOW)
        table.store(result)
        one_by_one += result.scored
    for scored in (whole.scored, one_by_one):
        bodies = [orjson.loads(s.output.value or b"") for s in scored]
        assert [(b["cart_items"], b["cart_value"]) for b in bodies] == expected
