"""The worker's drift wiring: the scoring agent feeds the window, the gauges export it, and a
model without reference distributions runs with one log line and no PSI."""

import logging
import math
from pathlib import Path

import pytest
import torch

from model.network import PropensityNet
from model.serving.export import load_model, save_model
from streams.worker.agents.drift_report import drift_window
from streams.worker.metrics import WorkerMetrics
from streams.worker.service import build_worker
from streams.worker.settings import Settings
from tests.unit.test_drift import reference
from tests.unit.test_model_artifact import tiny
from tests.unit.test_score_agent import CapturingPublisher, event, until


def model_with_reference(folder: Path) -> Path:
    torch.manual_seed(5)
    path = folder / "with-reference.pt"
    save_model(PropensityNet(tiny()), tiny(), path, metrics={"reference": reference().to_dict()})
    return path


def test_a_model_without_references_runs_without_drift(
    untrained_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(model_path=untrained_model, data_dir=tmp_path, partitions=1)
    metrics = WorkerMetrics()
    caplog.set_level(logging.WARNING)
    _, handler = build_worker(settings, load_model(untrained_model), metrics, CapturingPublisher())
    assert handler.drift is None
    lines = [r.getMessage() for r in caplog.records]
    assert any("records no reference distributions" in line for line in lines)
    assert metrics.registry.get_sample_value("propensity_drift_psi_threshold") == 0.1


def test_drift_off_by_setting(tmp_path: Path) -> None:
    path = model_with_reference(tmp_path)
    settings = Settings(model_path=path, data_dir=tmp_path, drift_window_events=0)
    assert drift_window(load_model(path), settings) is None


async def test_scored_events_feed_the_window_and_the_gauges(tmp_path: Path) -> None:
    path = model_with_reference(tmp_path)
    settings = Settings(
        app_id="drift-test",
        model_path=path,
        data_dir=tmp_path,
        partitions=1,
        batch_wait_ms=1,
        drift_window_events=60,
        drift_psi_threshold=0.2,
    )
    metrics = WorkerMetrics()
    publisher = CapturingPublisher()
    model = load_model(path)
    runtime, handler = build_worker(settings, model, metrics, publisher=publisher)
    assert handler.drift is not None
    agent = runtime.app.agents["score_events"]
    async with agent.test_context() as ctx:
        await ctx.put(key=b"u1", value=event("u1", "add_to_cart", 0))
        await ctx.put(key=b"u1", value=b"{broken")  # dead letters are not scored events
        for step in range(1, 70):
            await ctx.put(key=b"u2", value=event("u2", "view", step))
        await until(lambda: len(publisher.on(settings.output_topic)) == 70)
    figures = handler.drift.figures()
    assert figures.events == 60  # the last 60 of 70 scored events
    assert figures.event_mix_psi > 0.05  # 100% views against a reference of 90%
    assert math.isnan(figures.score_psi["cart_abandon"])  # one cart score: not full
    metrics.observe_drift(model.meta.model_version, figures)
    version = model.meta.model_version
    sample = metrics.registry.get_sample_value
    assert sample("propensity_drift_window_events", {"model_version": version}) == 60
    assert sample("propensity_event_mix_psi", {"model_version": version}) == figures.event_mix_psi
    purchase = sample("propensity_score_psi", {"head": "purchase", "model_version": version})
    assert purchase == figures.score_psi["purchase"] and not math.isnan(purchase)
    assert sample("propensity_drift_psi_threshold") == 0.2
