"""Live quality windows (model.monitoring): figures equal the offline measures, windows evict
by count and by event time, duplicates and bad records are skipped with a reason."""

import math
from typing import Any

import numpy as np
import orjson
import pytest

from model.evaluation.measures import binary_metrics
from model.monitoring.figures import QualityFigures, quality_figures
from model.monitoring.outcomes import decode_outcome, parse_outcome
from model.monitoring.quality import (
    COUNT_WINDOW,
    DUPLICATE,
    HOUR_MS,
    TIME_WINDOW,
    LiveQuality,
    QualityLimits,
    WindowFigures,
    as_arrays,
)
from schemas.outputs import outcome_record

T0 = 1_733_300_000_000


def record(
    i: int,
    *,
    ts: int | None = None,
    purchase: float = 0.5,
    label: int = 0,
    cart: float | None = None,
    cart_label: int | None = None,
    version: str = "v1",
    event_id: str | None = None,
) -> dict[str, Any]:
    return outcome_record(
        event_id=event_id or f"e{i}",
        user_id=f"u{i % 7}",
        model_version=version,
        event_type="view",
        event_ts=T0 + i * 1000 if ts is None else ts,
        horizon_ms=HOUR_MS,
        purchase=purchase,
        cart_abandon=cart,
        purchase_label=label,
        cart_abandon_label=cart_label,
        resolved_by="purchase" if label else "horizon",
        resolved_at=T0 + i * 1000 + HOUR_MS,
    )


def random_records(n: int, seed: int = 0, **kwargs: Any) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    y = (rng.uniform(0, 1, n) < p).astype(int)
    cart = rng.uniform(0, 1, n)
    has_cart = rng.uniform(0, 1, n) < 0.4
    cy = (rng.uniform(0, 1, n) < cart).astype(int)
    return [
        record(
            i,
            purchase=float(p[i]),
            label=int(y[i]),
            cart=float(cart[i]) if has_cart[i] else None,
            cart_label=int(cy[i]) if has_cart[i] else None,
            **kwargs,
        )
        for i in range(n)
    ]


def by_key(figures: list[WindowFigures]) -> dict[tuple[str, str, str], QualityFigures]:
    return {(f.model_version, f.head, f.window): f.figures for f in figures}


def assert_same_as_offline(figures: QualityFigures, scores: np.ndarray, labels: np.ndarray) -> None:
    offline = binary_metrics(labels, scores, threshold=0.5)
    for name, theirs in (
        ("roc_auc", offline["roc_auc"]),
        ("pr_auc", offline["pr_auc"]),
        ("brier", offline["brier"]),
        ("log_loss", offline["log_loss"]),
        ("ece", offline["ece"]),
        ("observed_rate", offline["positive_rate"]),
        ("predicted_rate", float(np.mean(scores))),
        ("outcomes", offline["events"]),
    ):
        ours = getattr(figures, name)
        assert ours == pytest.approx(theirs, abs=1e-12, nan_ok=True), name


def test_figures_equal_the_offline_measures_on_the_same_outcomes() -> None:
    records = random_records(3000, seed=1)
    quality = LiveQuality(QualityLimits(window_outcomes=2000))
    for r in records:
        assert quality.add(r) is None
    got = by_key(quality.figures())
    outcomes = [parse_outcome(r) for r in records]
    for head in ("purchase", "cart_abandon"):
        scores, labels = as_arrays(outcomes, head)
        assert_same_as_offline(got[("v1", head, TIME_WINDOW)], scores, labels)
        assert_same_as_offline(got[("v1", head, COUNT_WINDOW)], scores[-2000:], labels[-2000:])
    assert got[("v1", "purchase", TIME_WINDOW)].outcomes == 3000
    assert 0 < got[("v1", "cart_abandon", TIME_WINDOW)].outcomes < 3000


def test_one_class_gives_nan_ranking_and_empty_window_gives_nan_everything() -> None:
    one_class = quality_figures(np.array([0.2, 0.7]), np.array([0, 0], np.int8))
    assert math.isnan(one_class.roc_auc) and math.isnan(one_class.pr_auc)
    assert math.isnan(one_class.brier)  # as binary_metrics reports it
    assert one_class.log_loss > 0 and one_class.outcomes == 2
    empty = quality_figures(np.array([]), np.array([], np.int8))
    assert empty.outcomes == 0 and all(
        math.isnan(getattr(empty, n)) for n in QualityFigures.names() if n != "outcomes"
    )


def test_count_window_keeps_the_last_n_in_arrival_order() -> None:
    quality = LiveQuality(QualityLimits(window_outcomes=5))
    for i in range(12):
        quality.add(record(i, purchase=i / 20, label=i % 2))
    (count,) = [w for w in quality.windows() if w.head == "purchase" and w.window == COUNT_WINDOW]
    assert count.arrays.scores.tolist() == [i / 20 for i in range(7, 12)]
    assert count.arrays.labels.tolist() == [1, 0, 1, 0, 1]


def test_event_time_window_evicts_what_the_newest_event_time_leaves_behind() -> None:
    quality = LiveQuality(QualityLimits(window_outcomes=100, window_ms=10_000))
    for i, ts in enumerate([0, 4000, 8000, 12_000, 3000, 25_000]):
        quality.add(record(i, ts=T0 + ts, label=i % 2))
    windows = {(w.head, w.window): w.arrays for w in quality.windows()}
    # newest 25,000: the window is [15,000, 25,000]; 3000 arrived late and is outside too.
    assert (windows[("purchase", TIME_WINDOW)].event_ts - T0).tolist() == [25_000]
    assert len(windows[("purchase", COUNT_WINDOW)].scores) == 6
    # Out of order: 3,000 arrives after 12,000 while still inside [2,000, 12,000].
    late = LiveQuality(QualityLimits(window_ms=10_000))
    for i, ts in enumerate([0, 12_000, 3000, 1000]):
        late.add(record(i, ts=T0 + ts))
    timed = [w.arrays for w in late.windows() if w.head == "purchase" and w.window == TIME_WINDOW]
    assert (timed[0].event_ts - T0).tolist() == [12_000, 3000]


def test_event_time_window_is_capped_and_counts_what_the_cap_drops() -> None:
    quality = LiveQuality(QualityLimits(window_outcomes=3, time_window_cap=4))
    for i in range(10):
        quality.add(record(i))
    assert quality.cap_drops == 6
    figures = by_key(quality.figures())
    assert figures[("v1", "purchase", TIME_WINDOW)].outcomes == 4
    assert figures[("v1", "purchase", COUNT_WINDOW)].outcomes == 3


def test_duplicates_are_skipped_while_held_and_forgotten_once_evicted() -> None:
    quality = LiveQuality(QualityLimits(window_outcomes=3, window_ms=5000, time_window_cap=3))
    assert quality.add(record(0, label=1)) is None
    assert quality.add(record(0, label=1)) == DUPLICATE
    for i in range(1, 4):
        quality.add(record(i))
    assert quality.held_ids("v1") == 3  # e0 left both windows: its id is forgotten
    assert quality.add(record(0, label=1)) is None
    assert quality.skipped[DUPLICATE] == 1
    assert quality.accepted == 5


def test_model_versions_are_kept_apart() -> None:
    quality = LiveQuality()
    for r in random_records(200, seed=2, version="v1"):
        quality.add(r)
    for r in random_records(50, seed=3, version="v2"):
        quality.add(r)  # same event ids, another model: not duplicates
    figures = by_key(quality.figures())
    assert figures[("v1", "purchase", COUNT_WINDOW)].outcomes == 200
    assert figures[("v2", "purchase", COUNT_WINDOW)].outcomes == 50
    assert quality.model_versions == ["v1", "v2"]
    assert quality.skipped[DUPLICATE] == 0


def test_null_cart_abandon_counts_for_the_purchase_head_only() -> None:
    quality = LiveQuality()
    quality.add(record(0, cart=None, cart_label=None))
    quality.add(record(1, cart=0.3, cart_label=1))
    quality.add(record(2, cart=0.3, cart_label=None))  # a score without a label: not counted
    figures = by_key(quality.figures())
    assert figures[("v1", "purchase", COUNT_WINDOW)].outcomes == 3
    assert figures[("v1", "cart_abandon", COUNT_WINDOW)].outcomes == 1
    assert figures[("v1", "cart_abandon", COUNT_WINDOW)].observed_rate == 1.0


def _without(r: dict[str, Any], *path: str) -> dict[str, Any]:
    inner = r
    for part in path[:-1]:
        inner = inner[part]
    del inner[path[-1]]
    return r


def _with(r: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    inner = r
    for part in path[:-1]:
        inner = inner[part]
    inner[path[-1]] = value
    return r


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ([1, 2], "not_an_object"),
        (_without(record(0), "event_id"), "missing_field"),
        (_without(record(0), "scores", "purchase"), "missing_field"),
        (_without(record(0), "labels", "cart_abandon"), "missing_field"),
        (_with(record(0), "1733300000000", "event_ts"), "wrong_type"),
        (_with(record(0), True, "event_ts"), "wrong_type"),
        (_with(record(0), "", "model_version"), "wrong_type"),
        (_with(record(0), "0.5", "scores", "purchase"), "wrong_type"),
        (_with(record(0), None, "scores", "purchase"), "wrong_type"),
        (_with(record(0), math.nan, "scores", "purchase"), "bad_score"),
        (_with(record(0), math.inf, "scores", "purchase"), "bad_score"),
        (_with(record(0), 1.5, "scores", "purchase"), "bad_score"),
        (_with(record(0), 2, "labels", "purchase"), "bad_label"),
        (_with(record(0), 1.0, "labels", "purchase"), "bad_label"),
        (_with(record(0), True, "labels", "purchase"), "bad_label"),
        (_with(record(0), None, "labels", "purchase"), "bad_label"),
        (_with(record(0), -1, "labels", "cart_abandon"), "bad_label"),
        (_with(record(0), [], "scores"), "wrong_type"),
    ],
)
def test_malformed_records_are_skipped_with_a_reason(bad: Any, reason: str) -> None:
    quality = LiveQuality()
    assert quality.add(bad) == reason
    assert quality.skipped[reason] == 1 and quality.accepted == 0
    assert quality.add(record(1)) is None  # and the next good one still counts


@pytest.mark.parametrize(
    ("value", "reason"),
    [(None, "not_json"), (b"{not json", "not_json"), (b'"text"', "not_an_object")],
)
def test_undecodable_values_are_skipped_with_a_reason(value: bytes | None, reason: str) -> None:
    quality = LiveQuality()
    assert quality.add_value(value) == reason
    assert quality.add_value(orjson.dumps(record(0))) is None
    assert decode_outcome(orjson.dumps(record(0))).event_id == "e0"


def test_history_snapshots_the_count_window_every_interval_of_event_time() -> None:
    quality = LiveQuality(QualityLimits(window_outcomes=50, history_interval_ms=HOUR_MS))
    records = random_records(400, seed=4)
    for i, r in enumerate(records):
        r["event_ts"] = T0 - T0 % HOUR_MS + i * 60_000  # a minute apart: 400 min ~ 6.7 h
        quality.add(r)
    purchase = [s for s in quality.history if s.head == "purchase"]
    assert [s.event_ts - purchase[0].event_ts for s in purchase] == [k * HOUR_MS for k in range(6)]
    # The first snapshot is the window just before the 61st outcome (the first of hour 1).
    outcomes = [parse_outcome(r) for r in records[10:60]]
    scores, labels = as_arrays(outcomes, "purchase")
    assert_same_as_offline(purchase[0].figures, scores, labels)


def test_reference_figures_export_what_the_artifact_has_and_skip_the_rest() -> None:
    from model.monitoring.reference import ReferenceFigure, reference_figures

    metrics = {
        "validation": {
            "purchase": {"roc_auc": 0.8, "brier": 0.1, "log_loss": 0.3, "events": 10},
            "cart_abandon": {"roc_auc": math.nan, "brier": None},
        },
        "test": {"purchase": {"ece": 0.02, "positive_rate": 0.1, "roc_auc": True}},
        "validation_auc": 0.8,
    }
    assert sorted(reference_figures(metrics)) == sorted(
        [
            ReferenceFigure("purchase", "validation", "roc_auc", 0.8),
            ReferenceFigure("purchase", "validation", "brier", 0.1),
            ReferenceFigure("purchase", "validation", "log_loss", 0.3),
            ReferenceFigure("purchase", "test", "ece", 0.02),
            ReferenceFigure("purchase", "test", "positive_rate", 0.1),
        ]
    )
    assert reference_figures({}) == []


def test_worker_metrics_export_figures_and_references_under_the_contract_names() -> None:
    from model.monitoring.reference import reference_figures
    from streams.worker.metrics import WorkerMetrics

    metrics = WorkerMetrics()
    quality = LiveQuality()
    for r in random_records(100, seed=9, version="v7"):
        quality.add(r)
    metrics.set_live_quality(quality.figures())
    metrics.set_model_reference("v7", reference_figures({"test": {"purchase": {"roc_auc": 0.7}}}))
    sample = metrics.registry.get_sample_value
    figures = by_key(quality.figures())[("v7", "purchase", TIME_WINDOW)]
    labels = {"head": "purchase", "model_version": "v7", "window": "24h"}
    for name in QualityFigures.names():
        assert sample(f"propensity_live_{name}", labels) == getattr(figures, name)
    reference = {"head": "purchase", "model_version": "v7", "split": "test", "metric": "roc_auc"}
    assert sample("propensity_model_reference", reference) == 0.7
