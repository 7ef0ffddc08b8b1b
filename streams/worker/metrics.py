"""Prometheus metrics of the worker (prefix propensity_, base units: seconds, bytes).

Faust's own sensors report milliseconds; none of them are re-exported here, so units never mix.
"""

from collections import Counter as Tally
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from model.monitoring.drift import DriftFigures
from model.monitoring.figures import QualityFigures
from model.monitoring.quality import WindowFigures
from model.monitoring.reference import ReferenceFigure
from model.monitoring.uplift import UpliftFigures
from streams.worker.outcome_join.step import JoinResult
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
# propensity_live_<figure>: one gauge per field of QualityFigures, labels head/model_version/window.
LIVE_QUALITY_HELP = {
    "roc_auc": "Live ROC-AUC of the head's scores against resolved outcomes in the window.",
    "pr_auc": "Live PR-AUC (average precision) over the window's resolved outcomes.",
    "brier": "Live Brier score (mean squared error of the probability) over the window.",
    "log_loss": "Live log loss over the window's resolved outcomes.",
    "ece": "Live expected calibration error (10 equal-width bins) over the window.",
    "predicted_rate": "Mean predicted probability over the window (calibration in the large).",
    "observed_rate": "Share of positive outcomes in the window (calibration in the large).",
    "outcomes": "Resolved outcomes in the window.",
}
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
        self.outcomes_published = Counter(
            "propensity_outcomes_published",
            "Outcome records published: a propensity joined with its label.",
            ["resolved_by"],
            registry=r,
        )
        self.outcome_pending = Gauge(
            "propensity_outcome_pending",
            "Predictions the outcome join holds in this worker's partitions: waiting for their"
            " label, or resolved positive and kept until their horizon ends (to recognise a"
            " republished copy).",
            registry=r,
        )
        self.outcome_pending_bytes = Gauge(
            "propensity_outcome_pending_bytes",
            "Bytes of the predictions the outcome join holds in this worker's partitions.",
            registry=r,
        )
        self.outcome_evicted = Counter(
            "propensity_outcome_evicted",
            "Open predictions dropped unlabelled because their user had too many held.",
            registry=r,
        )
        self.outcome_skipped = Counter(
            "propensity_outcome_skipped",
            "Propensity records the outcome join skipped, by reason (malformed, no_horizon,"
            " unknown_model, too_late, duplicate).",
            ["reason"],
            registry=r,
        )
        self.outcome_watermark_lag = Gauge(
            "propensity_outcome_watermark_lag_seconds",
            "Wall clock minus the oldest watermark of this worker's partitions (how far behind"
            " real time the outcome join decides labels).",
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
        self.actions_decided = Counter(
            "propensity_actions_decided",
            "Marketing actions decided, by action and assignment (control: recorded, not sent)"
            " and the policy file's hash.",
            ["action", "assignment", "policy"],
            registry=r,
        )
        self.actions_suppressed = Counter(
            "propensity_actions_suppressed",
            "Actions whose trigger matched but that were not decided, by reason (cooldown,"
            " daily_cap, quiet_hours, lower_priority), and the policy file's hash.",
            ["action", "reason", "policy"],
            registry=r,
        )
        self.action_pending_triggers = Gauge(
            "propensity_action_pending_triggers",
            "Users of this worker's partitions with an inactivity trigger or a held action.",
            registry=r,
        )
        self.action_state_bytes = Gauge(
            "propensity_action_state_bytes",
            "Bytes of the per-user action state in this worker's partitions.",
            registry=r,
        )
        self.webhook_requests = Counter(
            "propensity_action_webhook_requests",
            "Webhook requests for treatment actions: ok, retried (a failed attempt tried again),"
            " failed (given up: dead-lettered).",
            ["outcome"],
            registry=r,
        )
        self.uplift_users = Gauge(
            "propensity_uplift_users",
            "Users decided for each action, per assignment (each user once per action: the"
            " first decision), with a known outcome. The same in every worker.",
            ["action", "assignment"],
            registry=r,
        )
        self.uplift_conversions = Gauge(
            "propensity_uplift_conversions",
            "Of those users, how many bought within the uplift horizon after the decision.",
            ["action", "assignment"],
            registry=r,
        )
        self.uplift_conversion_rate = Gauge(
            "propensity_uplift_conversion_rate",
            "Conversions over users, per action and assignment.",
            ["action", "assignment"],
            registry=r,
        )
        self.uplift_absolute = Gauge(
            "propensity_uplift_absolute",
            "Conversion rate of treatment minus control, per action.",
            ["action"],
            registry=r,
        )
        self.uplift_ci_low = Gauge(
            "propensity_uplift_ci_low",
            "Lower end of the 95 % interval of the uplift (Newcombe's hybrid score).",
            ["action"],
            registry=r,
        )
        self.uplift_ci_high = Gauge(
            "propensity_uplift_ci_high",
            "Upper end of the 95 % interval of the uplift.",
            ["action"],
            registry=r,
        )
        self.uplift_incremental_purchases = Gauge(
            "propensity_uplift_incremental_purchases",
            "Purchases the action added among the treated users (uplift x treated users).",
            ["action"],
            registry=r,
        )
        self.uplift_skipped = Counter(
            "propensity_uplift_skipped",
            "Action-outcome records the uplift did not count: duplicates and malformed ones.",
            ["reason"],
            registry=r,
        )
        self.up = Gauge("propensity_worker_up", "1 while the worker process runs.", registry=r)
        self.ready = Gauge(
            "propensity_worker_ready",
            "1 once partitions are assigned and tables recovered.",
            registry=r,
        )

        self.live_quality = {
            name: Gauge(
                f"propensity_live_{name}",
                LIVE_QUALITY_HELP[name],
                ["head", "model_version", "window"],
                registry=r,
            )
            for name in QualityFigures.names()
        }
        self.model_reference = Gauge(
            "propensity_model_reference",
            "The served model's own figures as its artifact records them (split validation or"
            " test): what the live figures are compared with.",
            ["head", "model_version", "split", "metric"],
            registry=r,
        )
        self.live_quality_skipped = Counter(
            "propensity_live_quality_skipped",
            "Outcome records live quality did not count: duplicates (at-least-once delivery)"
            " and malformed records, by reason.",
            ["reason"],
            registry=r,
        )
        self.live_quality_cap_drops = Counter(
            "propensity_live_quality_cap_drops",
            "Outcomes pushed out of the event-time window early by its size cap"
            " (PROPENSITY_QUALITY_WINDOW_CAP).",
            registry=r,
        )
        self.live_quality_seconds = Gauge(
            "propensity_live_quality_compute_seconds",
            "Wall time of the last computation of the live-quality gauges (in a thread).",
            registry=r,
        )

    def set_live_quality(self, figures: list[WindowFigures]) -> None:
        """Set the propensity_live_* gauges of each window."""
        for window in figures:
            labels = (window.head, window.model_version, window.window)
            for name, gauge in self.live_quality.items():
                gauge.labels(*labels).set(getattr(window.figures, name))

    def set_model_reference(self, model_version: str, figures: list[ReferenceFigure]) -> None:
        for f in figures:
            self.model_reference.labels(f.head, model_version, f.split, f.metric).set(f.value)

    def set_uplift(self, rows: list[UpliftFigures]) -> None:
        """Set the propensity_uplift_* gauges of each action."""
        for row in rows:
            for assignment, arm in (("treatment", row.treatment), ("control", row.control)):
                self.uplift_users.labels(row.action, assignment).set(arm.users)
                self.uplift_conversions.labels(row.action, assignment).set(arm.conversions)
                self.uplift_conversion_rate.labels(row.action, assignment).set(arm.rate)
            self.uplift_absolute.labels(row.action).set(row.uplift)
            self.uplift_ci_low.labels(row.action).set(row.ci_low)
            self.uplift_ci_high.labels(row.action).set(row.ci_high)
            self.uplift_incremental_purchases.labels(row.action).set(row.incremental_purchases)

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

    def observe_outcomes(self, result: JoinResult) -> None:
        """Record one published outcome-join batch or sweep."""
        resolved: Tally[str] = Tally(outcome.resolved_by for outcome in result.outcomes)
        for resolved_by, count in resolved.items():
            self.outcomes_published.labels(resolved_by).inc(count)
        skipped: Tally[str] = Tally(skip.reason for skip in result.skipped)
        for reason, count in skipped.items():
            self.outcome_skipped.labels(reason).inc(count)
        self.outcome_evicted.inc(result.evicted)
