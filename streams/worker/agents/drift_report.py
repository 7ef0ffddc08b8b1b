"""The drift timer: exports the scoring agent's drift window as PSI gauges every few seconds,
off the scoring path (the agent only appends to the window)."""

import logging
from typing import Final

from model.monitoring.drift import DriftWindow
from model.serving.export import LoadedModel
from model.serving.reference import reference_from_metrics
from streams.worker.app import Runtime
from streams.worker.metrics import WorkerMetrics
from streams.worker.settings import Settings

log = logging.getLogger(__name__)

REPORT_SECONDS: Final = 5.0  # a PSI over thousands of events moves slowly; scrapes are ~15 s


def drift_window(model: LoadedModel, settings: Settings) -> DriftWindow | None:
    """The window the scoring agent feeds, or None (with one log line saying why) when drift
    monitoring is off or the model records no reference distributions."""
    if settings.drift_window_events <= 0:
        log.info("drift monitoring off (drift_window_events=%d)", settings.drift_window_events)
        return None
    # load_model has refused a malformed reference already: this parses a checked one.
    reference = reference_from_metrics(model.meta.metrics)
    if reference is None:
        log.warning(
            "model %s records no reference distributions (trained before they were recorded):"
            " no PSI is exported; retrain with `propensity train` to monitor drift",
            model.meta.model_version,
        )
        return None
    return DriftWindow(reference, settings.drift_window_events)


def register(
    runtime: Runtime, model_version: str, metrics: WorkerMetrics, drift: DriftWindow
) -> None:
    """Attach the timer that exports ``drift``'s figures."""

    @runtime.app.timer(REPORT_SECONDS)
    async def report_drift() -> None:
        metrics.observe_drift(model_version, drift.figures())
