"""The live-quality service: follows the outcomes topic and keeps the propensity_live_* gauges.

A ``TopicFollower`` (every partition, no consumer group: every worker computes the same
global figures) starting at the records written within the event-time window, so a restarted
worker refills its windows from the topic.

Figures are computed off the scoring path: records are parsed on the event loop in small
batches (about 8 µs each), the windows copied there (milliseconds), and the figures computed
in a thread. A computation starts at most every ``quality_interval_seconds`` and only when
outcomes arrived since the last one; while one takes longer than a quarter of the interval
(an event-time window near its million-outcome cap takes seconds), the interval stretches to
four times its duration, so live quality never takes more than about a quarter of a core.
"""

import asyncio
import time
from collections.abc import Callable

from model.monitoring.quality import HOUR_MS, LiveQuality, QualityLimits, figures_of
from streams.worker.metrics import WorkerMetrics
from streams.worker.settings import Settings
from streams.worker.topic_follower import TopicFollower

COMPUTE_SHARE = 0.25  # most of the time figures may take, as a share of the interval


def quality_limits(settings: Settings) -> QualityLimits:
    return QualityLimits(
        window_outcomes=settings.quality_window_outcomes,
        window_ms=round(settings.quality_window_hours * HOUR_MS),
        time_window_cap=settings.quality_window_cap,
    )


class LiveQualityFollower(TopicFollower):
    """Consumes the outcomes topic into a LiveQuality and exports its figures."""

    name = "live quality"

    def __init__(
        self,
        settings: Settings,
        metrics: WorkerMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            settings,
            settings.outcomes_topic,
            settings.quality_window_hours,
            settings.quality_interval_seconds,
            clock,
        )
        self.metrics = metrics
        self.quality = LiveQuality(quality_limits(settings))
        self._computed_revision = -1
        self._cap_drops_exported = 0

    def consume(self, value: bytes | None) -> str | None:
        reason = self.quality.add_value(value)
        if reason is not None:
            self.metrics.live_quality_skipped.labels(reason).inc()
        return reason

    async def export(self) -> float:
        """Compute the figures in a thread (if outcomes arrived since) and set the gauges."""
        quality = self.quality
        drops = quality.cap_drops - self._cap_drops_exported
        if drops:
            self.metrics.live_quality_cap_drops.inc(drops)
            self._cap_drops_exported = quality.cap_drops
        if quality.revision == self._computed_revision:
            return 0.0
        revision, contents = quality.revision, quality.windows()
        started = time.monotonic()
        figures = await asyncio.get_running_loop().run_in_executor(None, figures_of, contents)
        took = time.monotonic() - started
        self.metrics.set_live_quality(figures)
        self.metrics.live_quality_seconds.set(took)
        self._computed_revision = revision
        return max(self.interval, took / COMPUTE_SHARE)
