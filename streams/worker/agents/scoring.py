"""The score_events agent: gathers records from Faust events, runs the scoring step on them,
publishes its outputs, then stores its states."""

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from faust.types import EventT

from model.monitoring.drift import DriftWindow
from model.serving.scorer import SequenceScorer
from streams.worker.agents.fail_stop import FatalHandler
from streams.worker.app import Runtime
from streams.worker.metrics import WorkerMetrics
from streams.worker.publisher import Publisher
from streams.worker.scoring_step import BatchResult, InputRecord, StepConfig, score_batch
from streams.worker.settings import Settings
from streams.worker.transport import RecordBundle

log = logging.getLogger(__name__)

# Events scored between two yields to the event loop: keeps each blocking slice short.
SLICE_SIZE = 128
# Bundles (one per fetched partition run) gathered into one micro-batch at most.
MAX_BUNDLES = 32


def _ms(timestamp: float | None) -> int | None:
    return None if timestamp is None else int(timestamp * 1000)


def input_records(event: EventT[Any], consumed_at: float) -> list[InputRecord]:
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


def describe_batch(events: Sequence[EventT[Any]], generation: int) -> str:
    """One line per batch for the log: each bundle's partition and offsets."""
    parts = []
    for e in events:
        m = e.message
        bundle = e.value
        if isinstance(bundle, RecordBundle):
            span = f"{bundle.first_offset}-{bundle.last_offset}"
        else:
            span = str(m.offset)
        stale = "" if m.generation_id == generation else f" (generation {m.generation_id})"
        parts.append(f"{m.topic}:{m.partition}@{span}{stale}")
    return f"generation {generation}: " + ", ".join(parts)


class BatchHandler:
    """Runs the scoring step on slices of a batch and queues what it returns; ``publish()``
    sends and awaits it all."""

    def __init__(
        self,
        runtime: Runtime,
        scorer: SequenceScorer,
        settings: Settings,
        metrics: WorkerMetrics,
        publisher: Publisher,
        horizon_ms: int,
        drift: DriftWindow | None = None,
    ) -> None:
        self.runtime = runtime
        self.drift = drift  # fed every scored event; housekeeping exports its figures
        self.scorer = scorer
        self.settings = settings
        self.metrics = metrics
        self.publisher = publisher
        self.config = StepConfig(
            max_event_bytes=settings.max_event_bytes,
            horizon_ms=horizon_ms,
            max_future_ms=settings.max_future_skew_ms,
        )
        self._unpublished: list[BatchResult] = []
        # (key, value, partition) changelog records, sent only after the outputs are acked
        self._changelog: list[tuple[bytes, bytes, int]] = []

    def handle(self, records: Sequence[InputRecord]) -> BatchResult:
        """Score one slice (CPU only, no I/O), queue its outputs and store its states (in the
        table now, in the changelog at ``publish()``)."""
        started = time.perf_counter()
        publisher, settings, table = self.publisher, self.settings, self.runtime.user_states
        result = score_batch(records, table.get, self.scorer, self.config, int(time.time() * 1000))
        for dead in result.dead_letters:
            out = dead.output
            publisher.enqueue(settings.dlq_topic, out.key, out.value, headers=out.headers or ())
        for scored in result.scored:
            publisher.enqueue(settings.output_topic, scored.output.key, scored.output.value)
        for user, (partition, state) in result.states.items():
            key, value = table.put(user, partition, state)
            self._changelog.append((key, value, partition))
        if self.drift is not None and result.scored:
            # about 0.2 µs per event (propensity bench-drift)
            self.drift.observe(
                [s.event.event_type for s in result.scored],
                [s.score.purchase for s in result.scored],
                [s.score.cart_abandon for s in result.scored],
            )
        self.metrics.observe_batch(result, time.perf_counter() - started)
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
            self.metrics.observe(result, published_at)


def register(
    runtime: Runtime,
    scorer: SequenceScorer,
    settings: Settings,
    metrics: WorkerMetrics,
    sink: Publisher,
    horizon_ms: int,
    fatal: FatalHandler,
    drift: DriftWindow | None = None,
) -> BatchHandler:
    """Attach the score_events agent to the app; ``fatal`` gets any fault of scoring or
    publishing; ``drift`` (when the model has references) is fed the scored events."""
    handler = BatchHandler(runtime, scorer, settings, metrics, sink, horizon_ms, drift)

    # concurrency must stay 1: faust-streaming #606 commits offsets past in-flight messages.
    @runtime.app.agent(runtime.input_topic, name="score_events", concurrency=1)
    async def score_events(stream: Any) -> None:
        await sink.prepare([settings.output_topic, settings.dlq_topic])
        within = settings.batch_wait_ms / 1000.0
        async for events in stream.take_events(MAX_BUNDLES, within=within):
            consumed_at = time.time()
            records = [r for e in events for r in input_records(e, consumed_at)]
            scored = redelivered = dead = 0
            try:
                for start in range(0, len(records), SLICE_SIZE):
                    result = handler.handle(records[start : start + SLICE_SIZE])
                    scored += len(result.scored)
                    redelivered += len(result.redelivered)
                    dead += len(result.dead_letters)
                    await asyncio.sleep(0)
                await handler.publish()  # take_events acks this batch only after we return here
                # INFO only for what is rare and worth reading after a fault: redeliveries.
                # Every batch at DEBUG; dead letters have their topic and counters, and a
                # producer gone wrong would otherwise put a line per batch in the log.
                level = logging.INFO if redelivered else logging.DEBUG
                if log.isEnabledFor(level):
                    log.log(
                        level,
                        "batch %s: %d scored, %d redelivered, %d dead",
                        describe_batch(events, runtime.app.consumer_generation_id),
                        scored,
                        redelivered,
                        dead,
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the input's faults are dead letters: this is ours
                fatal(exc)
                raise  # only reached when a test's handler returns

    return handler
