"""The demo's model-quality table reads the worker's own metrics registry."""

import math

from prometheus_client import generate_latest

from model.monitoring.figures import QualityFigures
from model.monitoring.quality import WindowFigures
from model.monitoring.reference import ReferenceFigure
from model.simulate.drift import Drift
from streams.harness.worker_figures import QualityView, read_figures
from streams.worker.metrics import WorkerMetrics


def test_figures_come_from_the_metrics_the_worker_exports() -> None:
    metrics = WorkerMetrics()
    figures = QualityFigures(0.71, 0.3, 0.1, 0.4, 0.02, 0.2, 0.25, 900)
    other = QualityFigures(0.5, 0.3, 0.1, 0.4, 0.02, 0.2, 0.25, 5)
    metrics.set_live_quality(
        [
            WindowFigures("v1", "purchase", "count", figures),
            WindowFigures("v1", "purchase", "24h", other),  # not the count window: not shown
        ]
    )
    metrics.set_model_reference("v1", [ReferenceFigure("purchase", "test", "roc_auc", 0.8)])
    metrics.score_psi.labels("purchase", "v1").set(0.3)
    metrics.drift_psi_threshold.set(0.1)
    metrics.outcomes_published.labels("purchase").inc(3)
    metrics.outcomes_published.labels("horizon").inc(4)
    read = read_figures(generate_latest(metrics.registry).decode())
    assert read.get("roc_auc", "purchase") == 0.71
    assert read.get("outcomes", "purchase") == 900
    assert math.isnan(read.get("roc_auc", "cart_abandon"))
    assert read.test_auc == {"purchase": 0.8}
    assert read.psi["purchase"] == 0.3 and read.threshold == 0.1
    assert read.outcomes_published == 7

    class Source:
        def metrics(self) -> str:
            return generate_latest(metrics.registry).decode()

    view = QualityView(Source(), Drift("segment", 10))
    view.refresh(20)
    assert view.figures.get("roc_auc", "purchase") == 0.71
    assert view.render().row_count == 3
