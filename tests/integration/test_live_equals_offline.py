"""Replaying the REES46 sample through the worker: the live figures over the resolved outcomes
equal the offline evaluation's on the same events, labels and model (to 1e-6)."""

import asyncio
from pathlib import Path

import numpy as np
import orjson
import pytest

from model.evaluation.assessment import predict_network
from model.evaluation.measures import binary_metrics
from model.importers import import_events
from model.monitoring.quality import COUNT_WINDOW, LiveQuality, QualityLimits
from model.serving.export import load_model
from model.training.data import build_dataset, load_events
from model.training.fitting import TrainConfig
from model.training.train import train_file
from streams.harness.drills import clock_records
from streams.harness.producer import record_for_event, send_records
from streams.worker.admin import ensure_topics, service_topics
from tests.kafka_helpers import collect, start_worker, worker_settings

pytestmark = [pytest.mark.integration, pytest.mark.realdata]

HORIZON_MS = 5 * 60_000  # the README's REES46 recipe


def test_live_figures_equal_offline_figures_on_the_rees46_sample(
    rees46_sample: Path, kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    events_file = tmp_path / "rees46.jsonl"
    import_events("rees46", rees46_sample, events_file)
    model_path = tmp_path / "model.pt"
    config = TrainConfig(threads=2, val_fraction=0.3, test_fraction=0.3).quick()
    train_file(events_file, model_path, horizon_ms=HORIZON_MS, config=config, progress=False)
    events, _ = load_events(events_file)

    settings = worker_settings(unique_name, kafka_bootstrap, model_path, tmp_path, partitions=2)
    lateness = settings.outcome_allowed_lateness_seconds * 1000
    clocks = clock_records(settings, max(e.ts for e in events) + HORIZON_MS + lateness + 2)
    records = [record_for_event(e, settings.input_topics) for e in events]
    ensure_topics(settings, service_topics(settings))
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        asyncio.run(send_records(settings, [*records, *clocks]))
        outcomes = asyncio.run(
            collect(kafka_bootstrap, [settings.outcomes_topic], expected=len(events), timeout=300)
        )
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    assert len(outcomes) == len(events)

    live = LiveQuality(QualityLimits(window_outcomes=len(events), window_ms=10**15))
    for message in outcomes:
        assert live.add_value(message.value) is None
    figures = {f.head: f.figures for f in live.figures() if f.window == COUNT_WINDOW}

    # Offline, by model/: the training data path labels the events, the evaluation scores
    # them with the same artifact (whole sequences at once, not step by step).
    loaded = load_model(model_path)
    dataset = build_dataset(events, horizon_ms=HORIZON_MS)
    scores = predict_network(loaded, dataset, np.ones((dataset.n_events, 2), bool))
    y_purchase = dataset.flat_labels("purchase_within_horizon")
    carts = dataset.flat("cart_items") > 0
    offline = {
        "purchase": binary_metrics(y_purchase, scores[:, 0], 0.5),
        "cart_abandon": binary_metrics(
            dataset.flat_labels("cart_abandon")[carts], scores[carts, 1], 0.5
        ),
    }
    printed = []
    for head, want in offline.items():
        got = figures[head]
        assert got.outcomes == want["events"]
        for name in ("roc_auc", "brier", "ece", "log_loss", "pr_auc"):
            delta = abs(getattr(got, name) - want[name])
            printed.append(
                f"{head} {name} over {got.outcomes} outcomes: live {getattr(got, name):.6f}"
                f" offline {want[name]:.6f} |delta| {delta:.1e}"
            )
            assert delta <= 1e-6, printed[-1]
    print("\n".join(printed))
    assert len({orjson.loads(m.value)["event_id"] for m in outcomes}) == len(events)
