"""The drift alert with the default window and threshold, on simulated shoppers scored by the
worker's scorer and windowed by its DriftWindow (streams.harness.drift_bench): silent over a
week without drift, firing within a measured number of events after a new segment arrives.

Measured on this test's seeds (propensity bench-drift's logic, 1,000 shoppers, a model
trained quick on 10 simulated days): the largest score PSI over the week without drift was
0.053 at the default window of 5,000 events; the alert fired 4,356 events (960 event-time
minutes) after the segment drift began. The bound below leaves room for other platforms'
floating point, not for a slower detector.
"""

import math

import pytest

from model.serving.export import load_model
from model.serving.reference import reference_from_metrics
from model.training.train import train_simulated
from streams.harness.drift_bench import BenchPlan, BenchResult, run_bench
from streams.worker.settings import Settings

DETECTED_WITHIN_EVENTS = 8000
DEFAULTS = Settings()
WINDOW, THRESHOLD = DEFAULTS.drift_window_events, DEFAULTS.drift_psi_threshold


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> BenchResult:
    path = tmp_path_factory.mktemp("drift") / "model.pt"
    train_simulated(path, quick=True, progress=False, users=1000, days=10, seed=2)
    model = load_model(path)
    reference = reference_from_metrics(model.meta.metrics)
    assert reference is not None, "propensity train records reference distributions"
    plan = BenchPlan(
        users=1000,
        burn_in_days=5,
        days=7,
        drift_after_days=2,
        windows=(WINDOW,),
        thresholds=(THRESHOLD,),
        kinds=("segment",),
    )
    return run_bench(model, reference, plan)


def test_no_alert_over_a_week_without_drift(measured: BenchResult) -> None:
    assert measured.false_alarms[WINDOW][THRESHOLD] == 0.0
    largest = max(measured.psi_quantiles[WINDOW][head][-1] for head in ("purchase", "cart_abandon"))
    assert not math.isnan(largest) and largest < THRESHOLD


def test_alert_within_the_measured_events_after_a_new_segment(measured: BenchResult) -> None:
    found = measured.detections["segment"][WINDOW][THRESHOLD]
    assert found.fired and not found.already_firing
    assert 0 < found.events <= DETECTED_WITHIN_EVENTS
