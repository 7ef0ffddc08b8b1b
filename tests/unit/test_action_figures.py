"""The demo's Actions table reads the worker's own action and uplift metrics."""

from prometheus_client import generate_latest

from model.monitoring.uplift import ArmFigures, UpliftFigures
from streams.harness.worker_figures import ActionsView, read_action_figures
from streams.worker.metrics import WorkerMetrics


def test_action_figures_come_from_the_metrics_the_worker_exports() -> None:
    metrics = WorkerMetrics()
    metrics.actions_decided.labels("reminder", "treatment", "p1").inc(9)
    metrics.actions_decided.labels("reminder", "control", "p1").inc(1)
    metrics.actions_suppressed.labels("reminder", "cooldown", "p1").inc(4)
    metrics.set_uplift(
        [UpliftFigures("reminder", ArmFigures(8, 4, 0.5), ArmFigures(2, 0, 0.0), 0.5, 0.1, 0.8, 4)]
    )
    text = generate_latest(metrics.registry).decode()
    figures = read_action_figures(text)
    assert figures.actions == ["reminder"]
    assert figures.decided == {("reminder", "treatment"): 9, ("reminder", "control"): 1}
    assert figures.suppressed == {("reminder", "cooldown"): 4}
    assert figures.arms[("conversion_rate", "reminder", "treatment")] == 0.5
    assert figures.uplift[("ci_high", "reminder")] == 0.8

    class Source:
        def metrics(self) -> str:
            return text

    view = ActionsView(Source(), effect=0.3)
    view.refresh()
    assert view.render().row_count == 1
