"""The uplift service: follows the action-outcomes topic and keeps the propensity_uplift_*
gauges (per action: users and conversions per group, conversion rates, absolute uplift with
Newcombe's 95 % interval, incremental purchases).

A ``TopicFollower`` like live quality: every worker reads every partition and exports the
same global figures. It starts ``uplift_window_hours`` back (by record time) so a restarted
worker refills its table.
"""

from model.monitoring.uplift import UpliftTable
from streams.worker.metrics import WorkerMetrics
from streams.worker.settings import Settings
from streams.worker.topic_follower import TopicFollower


class UpliftFollower(TopicFollower):
    name = "uplift"

    def __init__(self, settings: Settings, metrics: WorkerMetrics) -> None:
        super().__init__(
            settings,
            settings.action_outcomes_topic,
            settings.uplift_window_hours,
            settings.quality_interval_seconds,
        )
        self.metrics = metrics
        self.table = UpliftTable()
        self._changed = False

    def consume(self, value: bytes | None) -> str | None:
        reason = self.table.observe_value(value)
        if reason is None:
            self._changed = True
        else:
            self.metrics.uplift_skipped.labels(reason).inc()
        return reason

    async def export(self) -> float:
        if self._changed:
            self.metrics.set_uplift(self.table.figures())
            self._changed = False
        return self.interval
