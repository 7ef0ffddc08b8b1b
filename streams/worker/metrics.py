"""Prometheus metrics of the worker (prefix propensity_, base units: seconds, bytes).

Faust's own sensors report milliseconds; none of them are re-exported here, so units never mix.
"""

from collections import Counter as Tally
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from model.monitoring.drift import DriftFigures
from streams.worker.scoring_step import BatchResult

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
EVENT_AGE_BUCKETS = (*LATENCY_BUCKETS, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
SCORE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass
class WorkerMetrics:
    """All metrics of one worker, registered in their own registry (tests make several)."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        r = self.registry
        self.events_consumed = Counter(
            "propensity_events_consumed",
            "Input events consumed, valid or not.",
            ["topic", "event_type"],
            registry=r,
        )
        self.invalid_events = Counter(
            "propensity_invalid_events",
            "Input events rejected by the contract.",
            ["reason"],
            registry=r,
        )
        self.dlq_writes = Counter(
            "propensity_dlq_writes",
            "Records written to the dead-letter topic.",
            ["reason"],
            registry=r,
        )
        self.propensities_published = Counter(
            "propensity_propensities_published", "Propensity events published.", registry=r
        )
        self.redelivered_events = Counter(
            "propensity_redelivered_events",
            "Input records the user's state had already applied (redelivered after a restart or"
            " rebalance): they change nothing and publish nothing.",
            registry=r,
        )
        self.internal_errors = Counter(
            "propensity_internal_errors",
            "Unforeseen exceptions while decoding a record (dead-lettered as internal_error, the"
            " exception class in its dlq.detail header).",
            registry=r,
        )
        self.non_finite_scores = Counter(
            "propensity_non_finite_scores",
            "Events whose score was NaN or infinite (dead-lettered; the user's state kept).",
            registry=r,
        )
        self.state_rebuilds = Counter(
            "propensity_state_rebuilds",
            "User states recomputed from the stored sequence (late event, new model).",
            registry=r,
        )
        self.users_expired = Counter(
            "propensity_users_expired",
            "Users removed from the table after the idle TTL.",
            registry=r,
        )
        self.batch_size = Histogram(
            "propensity_scoring_batch_size",
            "Events per scoring micro-batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            "propensity_scoring_batch_duration_seconds",
            "Wall time to score one micro-batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end_latency = Histogram(
            "propensity_end_to_end_latency_seconds",
            "Event time (ts) of the input to publication of its propensity event.",
            buckets=EVENT_AGE_BUCKETS,
            registry=r,
        )
        self.processing_latency = Histogram(
            "propensity_processing_latency_seconds",
            "Input consumed by the worker to its propensity event published.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scores = Histogram(
            "propensity_score",
            "Distribution of published probabilities per head.",
            ["head"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.model_info = Info("propensity_model", "The model being served.", registry=r)
        self.model_loaded = Gauge(
            "propensity_model_loaded", "1 when a valid model is loaded.", registry=r
        )
        self.active_users = Gauge(
            "propensity_active_users", "Users in this worker's sequence table.", registry=r
        )
        self.state_bytes = Gauge(
            "propensity_state_bytes",
            "Bytes of per-user state held in the sequence table.",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "propensity_consumer_lag",
            "High-water mark minus committed offset, per partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.score_psi = Gauge(
            "propensity_score_psi",
            "PSI of the head's scores over the last drift_window_events scored events against"
            " the model's validation-window score deciles (NaN until the window is full).",
            ["head", "model_version"],
            registry=r,
        )
        self.event_mix_psi = Gauge(
            "propensity_event_mix_psi",
            "PSI of the event-type mix over the last drift_window_events scored events against"
            " the model's validation window (NaN until the window is full).",
            ["model_version"],
            registry=r,
        )
        self.drift_window_events = Gauge(
            "propensity_drift_window_events",
            "Scored events in the drift window (at most drift_window_events).",
            ["model_version"],
            registry=r,
        )
        self.drift_psi_threshold = Gauge(
            "propensity_drift_psi_threshold",
            "The drift_psi_threshold setting: PSI above it for 15 minutes is drift.",
            registry=r,
        )
        self.up = Gauge("propensity_worker_up", "1 while the worker process runs.", registry=r)
        self.ready = Gauge(
            "propensity_worker_ready",
            "1 once partitions are assigned and tables recovered.",
            registry=r,
        )

    def observe_drift(self, model_version: str, figures: DriftFigures) -> None:
        """Export the drift window's current PSI values (NaN: window not yet full)."""
        for head, value in figures.score_psi.items():
            self.score_psi.labels(head, model_version).set(value)
        self.event_mix_psi.labels(model_version).set(figures.event_mix_psi)
        self.drift_window_events.labels(model_version).set(figures.events)

    def observe_batch(self, result: BatchResult, seconds: float) -> None:
        """Record one scored slice (``seconds``: its wall time), before it is published."""
        self.batch_size.observe(result.size)
        self.batch_duration.observe(seconds)
        self.state_rebuilds.inc(result.rebuilds)

    def observe(self, result: BatchResult, published_at: float) -> None:
        """Record one published slice: counters once per label set, histograms per event."""
        consumed: Tally[tuple[str, str]] = Tally()
        invalid: Tally[str] = Tally()
        for dead in result.dead_letters:
            consumed[(dead.record.topic, "invalid")] += 1
            invalid[dead.reason] += 1
        end_to_end, processing = self.end_to_end_latency.observe, self.processing_latency.observe
        purchase = self.scores.labels("purchase").observe
        cart_abandon = self.scores.labels("cart_abandon").observe
        for scored in result.scored:
            consumed[(scored.record.topic, scored.event.event_type)] += 1
            end_to_end(max(published_at - scored.event.ts / 1000.0, 0.0))
            processing(max(published_at - scored.record.consumed_at, 0.0))
            purchase(scored.score.purchase)
            if scored.score.cart_abandon is not None:
                cart_abandon(scored.score.cart_abandon)
        for record in result.redelivered:
            consumed[(record.topic, "redelivered")] += 1
        for (topic, event_type), count in consumed.items():
            self.events_consumed.labels(topic, event_type).inc(count)
        for reason, count in invalid.items():
            self.dlq_writes.labels(reason).inc(count)
            if reason == "non_finite_score":
                self.non_finite_scores.inc(count)
            else:
                self.invalid_events.labels(reason).inc(count)
        self.internal_errors.inc(invalid["internal_error"])
        self.redelivered_events.inc(len(result.redelivered))
        self.propensities_published.inc(len(result.scored))
