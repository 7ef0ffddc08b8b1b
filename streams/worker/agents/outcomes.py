"""The join_outcomes agent and its sweep timer: propensities in, outcome records out.

The agent reads the propensities topic (what the scoring agent publishes), runs the pure join
(streams.worker.outcome_join.step) on each micro-batch and publishes its outcome records, then
the users' new pending lists and the partitions' watermarks to the table's changelog, then
lets Faust ack the input: at least once, like scoring. The timer resolves the predictions of
users who never come back once the watermark has closed their horizon.

Both write the same table, so they take turns (one lock): a sweep never interleaves with a
batch, and the changelog receives each key's writes in the order they were made.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from streams.worker.actions.handler import ActionHandler
from streams.worker.agents.fail_stop import FatalHandler
from streams.worker.agents.scoring import MAX_BUNDLES, SLICE_SIZE, input_records
from streams.worker.app import Runtime
from streams.worker.metrics import WorkerMetrics
from streams.worker.outcome_join.step import (
    REDELIVERED,
    JoinConfig,
    JoinResult,
    Skipped,
    Watermarks,
    join_batch,
    sweep,
)
from streams.worker.publisher import Publisher
from streams.worker.scoring_step import InputRecord
from streams.worker.settings import Settings

log = logging.getLogger(__name__)

# Users resolved per sweep at most: a long pause must not turn into one long blocking slice.
MAX_SWEEP_USERS = 2_000
SKIP_LOG_INTERVAL_SECONDS = 10.0


class SkipLog:
    """One log line per reason at most every ``interval`` seconds, with the count since."""

    def __init__(self, interval: float = SKIP_LOG_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def note(self, skipped: Sequence[Skipped], now: float) -> None:
        for skip in skipped:
            reason = skip.reason
            self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
            if now - self._last.get(reason, -self.interval) >= self.interval:
                r = skip.record
                log.warning(
                    "outcome join skipped %d propensities (%s), e.g. %s:%d@%d: %s",
                    self._unlogged.pop(reason),
                    reason,
                    r.topic,
                    r.partition,
                    r.offset,
                    skip.detail,
                )
                self._last[reason] = now


class OutcomeHandler:
    """Runs the join on slices of a batch and the sweep; ``publish()`` sends what they made."""

    def __init__(
        self,
        runtime: Runtime,
        settings: Settings,
        metrics: WorkerMetrics,
        publisher: Publisher,
        model_version: str,
        actions: ActionHandler | None = None,
    ) -> None:
        self.runtime = runtime
        self.actions = actions
        self.settings = settings
        self.metrics = metrics
        self.publisher = publisher
        self.config = JoinConfig(
            allowed_lateness_ms=settings.outcome_allowed_lateness_seconds * 1000,
            max_pending_per_user=settings.outcome_max_pending_per_user,
            model_versions=frozenset({model_version, *settings.outcome_model_versions}),
        )
        self.lock = asyncio.Lock()  # held by a batch (handle..publish) or a sweep
        self.skip_log = SkipLog()
        self._changelog: list[tuple[str, bytes, bytes | None, int]] = []  # topic, key, value, p
        self._results: list[JoinResult] = []

    def watermarks(self, partitions: set[int]) -> Watermarks:
        table = self.runtime.pending_outcomes
        newest = {p: ts for p in partitions if (ts := table.newest_event_ts(p)) is not None}
        return Watermarks(self.config.allowed_lateness_ms, newest, now_ms=int(time.time() * 1000))

    def handle(self, records: Sequence[InputRecord]) -> JoinResult:
        """Join one slice (CPU only), queue its outcomes and store its pending lists."""
        table = self.runtime.pending_outcomes
        marks = self.watermarks({r.partition for r in records})
        result = join_batch(records, table.read, marks, self.config)
        if self.actions is not None:
            # A record the join recognised as applied before a restart was decided on too.
            again = {(s.record.partition, s.record.offset) for s in result.skipped_as(REDELIVERED)}
            fresh = [r for r in records if (r.partition, r.offset) not in again]
            self.actions.handle(fresh, result.pending, table.read, self._action_changelog)
        self._store(result, marks)
        self.skip_log.note(result.skipped, time.monotonic())
        return result

    def sweep(self, partitions: set[int], generation: int) -> JoinResult:
        """Resolve the predictions whose horizon has closed in ``partitions`` (CPU only)."""
        table = self.runtime.pending_outcomes
        marks = self.watermarks(partitions)
        known = {p: marks.known_until(p) for p in marks.newest}
        due = table.due(known, generation, limit=MAX_SWEEP_USERS)
        result = sweep(due, marks)
        for user, partition, pending in due:
            if user not in result.pending:
                table.reindex(user, partition, pending)
        if self.actions is not None:
            self.actions.sweep(
                marks, generation, result.pending, table.read, self._action_changelog
            )
        self._store(result, marks)
        return result

    def _store(self, result: JoinResult, marks: Watermarks) -> None:
        settings = self.settings
        for outcome in result.outcomes:
            out = outcome.output
            topic = settings.action_outcomes_topic if outcome.is_action else settings.outcomes_topic
            self.publisher.enqueue(topic, out.key, out.value)
        table = self.runtime.pending_outcomes
        topic = table.changelog_topic
        for user, entry in result.pending.items():
            key, value = table.write(user, entry.partition, entry.pending)
            self._changelog.append((topic, key, value, entry.partition))
        for partition in marks.changed:
            key, value = table.write_newest_event_ts(partition, marks.newest[partition])
            self._changelog.append((topic, key, value, partition))
        self._results.append(result)

    def _action_changelog(self, key: bytes, value: bytes | None, partition: int) -> None:
        assert self.runtime.action_states is not None
        topic = self.runtime.action_states.changelog_topic
        self._changelog.append((topic, key, value, partition))

    async def publish(self) -> None:
        """Send the outcomes, then the table's changelog records, each acknowledged before the
        next: a pending prediction leaves the changelog only after its outcome is published."""
        await self.publisher.flush()
        changelog, self._changelog = self._changelog, []
        for topic, key, value, partition in changelog:
            self.publisher.enqueue(topic, key, value, partition=partition)
        await self.publisher.flush()
        results, self._results = self._results, []
        for result in results:
            self.metrics.observe_outcomes(result)

    def watermark_lag_seconds(self, partitions: set[int], now: float) -> float | None:
        marks = self.watermarks(partitions)
        if not marks.newest or set(marks.newest) != partitions:
            return None
        return max(now - min(marks.known_until(p) for p in partitions) / 1000.0, 0.0)


def owned_partitions(runtime: Runtime) -> set[int]:
    """Partitions of the propensities topic this worker actively owns (standbys excluded)."""
    topics = set(runtime.output_topic.topics)
    return {tp.partition for tp in runtime.app.assignor.assigned_actives() if tp.topic in topics}


def register(
    runtime: Runtime,
    settings: Settings,
    metrics: WorkerMetrics,
    sink: Publisher,
    model_version: str,
    fatal: FatalHandler,
    actions: ActionHandler | None = None,
) -> OutcomeHandler:
    """Attach the join_outcomes agent and its sweep timer to the app; with ``actions``, the
    same agent decides marketing actions on the same records and watermark."""
    handler = OutcomeHandler(runtime, settings, metrics, sink, model_version, actions)
    app = runtime.app

    # concurrency must stay 1: faust-streaming #606 commits offsets past in-flight messages.
    @app.agent(runtime.output_topic, name="join_outcomes", concurrency=1)
    async def join_outcomes(stream: Any) -> None:
        topics = [settings.outcomes_topic]
        if actions is not None:
            topics += [settings.actions_topic, settings.action_outcomes_topic]
        await sink.prepare(topics)
        within = settings.batch_wait_ms / 1000.0
        async for events in stream.take_events(MAX_BUNDLES, within=within):
            consumed_at = time.time()
            records = [r for e in events for r in input_records(e, consumed_at)]
            try:
                async with handler.lock:
                    for start in range(0, len(records), SLICE_SIZE):
                        handler.handle(records[start : start + SLICE_SIZE])
                        await asyncio.sleep(0)
                    await handler.publish()  # take_events acks this batch after we return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a record's faults are skipped with a reason: this is ours
                fatal(exc)
                raise

    @app.timer(settings.outcome_sweep_interval_seconds)
    async def sweep_outcomes() -> None:
        if app.rebalancing:
            return
        try:
            async with handler.lock:
                handler.sweep(owned_partitions(runtime), app.consumer_generation_id)
                await handler.publish()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            fatal(exc)
            raise

    @app.timer(settings.lag_interval_seconds)
    async def measure_pending() -> None:
        owned = owned_partitions(runtime)
        count, size = runtime.pending_outcomes.pending_usage(owned)
        metrics.outcome_pending.set(count)
        metrics.outcome_pending_bytes.set(size)
        lag = handler.watermark_lag_seconds(owned, time.time())
        if lag is not None:
            metrics.outcome_watermark_lag.set(lag)
        if runtime.action_states is not None:
            metrics.action_pending_triggers.set(runtime.action_states.pending_triggers(owned))
            metrics.action_state_bytes.set(runtime.action_states.usage(owned)[1])

    return handler
