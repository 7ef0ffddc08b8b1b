"""The scoring step under the agent: records in, outputs queued, metrics recorded."""

import time
from collections import Counter
from collections.abc import Sequence

from faust.types import EventT

from model.serving.scorer import SequenceScorer
from streams.worker.app import Runtime
from streams.worker.metrics import WorkerMetrics
from streams.worker.publisher import BatchPublisher
from streams.worker.scoring_step import (
    BatchResult,
    InputRecord,
    output_records,
    process_batch,
    stored_state,
)
from streams.worker.settings import Settings
from streams.worker.transport import RecordBundle


def _ms(timestamp: float | None) -> int | None:
    return None if timestamp is None else int(timestamp * 1000)


def input_records(event: EventT, consumed_at: float) -> list[InputRecord]:
    """The records an event carries: a whole RecordBundle, or the one message."""
    bundle = event.value
    if isinstance(bundle, RecordBundle):
        return [
            InputRecord(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp, consumed_at)
            for r in bundle
        ]
    m = event.message
    return [
        InputRecord(m.topic, m.partition, m.offset, m.key, m.value, _ms(m.timestamp), consumed_at)
    ]


class BatchHandler:
    """Scores slices of records and queues every output; ``publish()`` sends and awaits them."""

    def __init__(
        self,
        runtime: Runtime,
        scorer: SequenceScorer,
        settings: Settings,
        metrics: WorkerMetrics,
        publisher: BatchPublisher,
        horizon_ms: int,
    ) -> None:
        self.runtime = runtime
        self.scorer = scorer
        self.settings = settings
        self.metrics = metrics
        self.publisher = publisher
        self.horizon_ms = horizon_ms
        self.load_state = stored_state(runtime.user_states.get, scorer)
        self._unpublished: list[BatchResult] = []
        # (key, value, partition) changelog records, sent only after the outputs are acked
        self._changelog: list[tuple[bytes, bytes, int]] = []

    def handle(self, records: Sequence[InputRecord]) -> BatchResult:
        """Score one slice (CPU only, no I/O) and queue its outputs and changelog records."""
        started = time.perf_counter()
        rebuilds_before = self.scorer.rebuilds
        result = process_batch(
            records,
            scorer=self.scorer,
            load_state=self.load_state,
            max_event_bytes=self.settings.max_event_bytes,
            horizon_ms=self.horizon_ms,
            max_future_ms=self.settings.max_future_skew_ms,
        )
        publisher, settings, table = self.publisher, self.settings, self.runtime.user_states
        for dead in result.dead_letters:
            out = dead.to_output()
            publisher.enqueue(settings.dlq_topic, out.key, out.value, headers=out.headers or ())
        for out in output_records(result):
            publisher.enqueue(settings.output_topic, out.key, out.value)
        for user, (partition, state) in result.states.items():
            key, value = table.put(user, partition, state)
            self._changelog.append((key, value, partition))
        self.metrics.batch_size.observe(len(records))
        self.metrics.batch_duration.observe(time.perf_counter() - started)
        self.metrics.state_rebuilds.inc(self.scorer.rebuilds - rebuilds_before)
        self._unpublished.append(result)
        return result

    async def publish(self) -> None:
        """Send the outputs, then the new states, waiting for the broker's acks of each (all
        before the agent acks the inputs).

        The order is the redelivery guarantee: a state that records an input as applied is
        written only after that input's propensity is acknowledged, so an input skipped as
        already applied after a restart has had its propensity published.
        """
        await self.publisher.flush()
        published_at = time.time()
        changelog, self._changelog = self._changelog, []
        topic = self.runtime.user_states.changelog_topic
        for key, value, partition in changelog:
            self.publisher.enqueue(topic, key, value, partition=partition)
        await self.publisher.flush()
        results, self._unpublished = self._unpublished, []
        for result in results:
            observe_outputs(self.metrics, result, published_at)


def observe_outputs(m: WorkerMetrics, result: BatchResult, published_at: float) -> None:
    """Record one published slice: counters once per label set, histograms per event."""
    consumed: Counter[tuple[str, str]] = Counter()
    invalid: Counter[str] = Counter()
    for dead in result.dead_letters:
        consumed[(dead.record.topic, "invalid")] += 1
        invalid[dead.reason] += 1
    end_to_end, processing = m.end_to_end_latency.observe, m.processing_latency.observe
    purchase = m.scores.labels("purchase").observe
    cart_abandon = m.scores.labels("cart_abandon").observe
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
        m.events_consumed.labels(topic, event_type).inc(count)
    for reason, count in invalid.items():
        m.dlq_writes.labels(reason).inc(count)
        if reason == "non_finite_score":
            m.non_finite_scores.inc(count)
        else:
            m.invalid_events.labels(reason).inc(count)
    m.internal_errors.inc(invalid["internal_error"])
    m.redelivered_events.inc(len(result.redelivered))
    m.propensities_published.inc(len(result.scored))
