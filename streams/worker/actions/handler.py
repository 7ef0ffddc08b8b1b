"""Marketing actions in the propensities agent: decide, publish action records, and hand each
decision to the outcome join so that its uplift outcome is known one horizon later.

Runs inside ``streams/worker/agents/outcomes.py`` (one agent per topic, one watermark): after
the join has applied a slice of propensities, ``handle`` applies the same slice to the users'
action states (event triggers; a new event resets the inactivity trigger); the sweep timer's
``sweep`` calls ``on_time`` with the watermark for the users due (inactivity triggers, held
decisions, expiring cooldowns). Decisions of both assignments go to the actions topic and
into the join's pending lists (``track_action``); suppressions are counted.
"""

from collections.abc import Callable, Sequence

import orjson

from schemas.outputs import CONTROL, action_record, encode
from streams.worker.actions.decide import Step, on_propensity, on_time
from streams.worker.actions.rules import Policy
from streams.worker.actions.state import ActionState, Decision
from streams.worker.actions.table import ActionStateTable
from streams.worker.metrics import WorkerMetrics
from streams.worker.outcome_join.pending import PendingPrediction
from streams.worker.outcome_join.step import NewPending, PendingReader, Watermarks, track_action
from streams.worker.publisher import Publisher
from streams.worker.scoring_step import InputRecord
from streams.worker.settings import Settings

MAX_SWEEP_USERS = 2_000
# Changelog records (key, value, partition) for the caller to send after the outputs.
Changelog = Callable[[bytes, bytes | None, int], None]


class ActionHandler:
    def __init__(
        self,
        settings: Settings,
        metrics: WorkerMetrics,
        publisher: Publisher,
        policy: Policy,
        table: ActionStateTable,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.publisher = publisher
        self.policy = policy
        self.table = table

    def handle(
        self,
        records: Sequence[InputRecord],
        lists: dict[str, NewPending],
        read_pending: PendingReader,
        changelog: Changelog,
    ) -> None:
        """Apply a slice of propensity records, in order, to the users' action states."""
        states: dict[str, tuple[int, ActionState]] = {}
        for record in records:
            try:
                message = orjson.loads(record.value or b"")
                user = message["user_id"]
                if not isinstance(user, str):
                    continue
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # the join counts malformed propensities
            _, state = states.get(user) or (record.partition, self.table.read(user))
            step = on_propensity(state, message, self.policy)
            states[user] = (record.partition, step.state)
            self._emit(step, user, record.partition, lists, read_pending)
        for user, (partition, state) in states.items():
            changelog(*self.table.write(user, partition, state), partition)

    def sweep(
        self,
        marks: Watermarks,
        generation: int,
        lists: dict[str, NewPending],
        read_pending: PendingReader,
        changelog: Changelog,
    ) -> None:
        """Let event time pass for the users due: inactivity triggers, held decisions."""
        known = {p: marks.known_until(p) for p in marks.newest}
        for user, partition, state in self.table.due(known, generation, MAX_SWEEP_USERS):
            step = on_time(state, known[partition], self.policy)
            self._emit(step, user, partition, lists, read_pending)
            if step.state == state:
                self.table.reindex(user, partition, state)
            else:
                changelog(*self.table.write(user, partition, step.state), partition)

    def _emit(
        self,
        step: Step,
        user: str,
        partition: int,
        lists: dict[str, NewPending],
        read_pending: PendingReader,
    ) -> None:
        horizon = self.policy.uplift_horizon_ms
        for decision in (*step.decisions, *step.held):
            track_action(user, partition, tracked(decision, horizon), lists, read_pending)
        for decision in step.decisions:  # held ones are published when released
            value = encode(self._record(decision))
            self.publisher.enqueue(self.settings.actions_topic, user.encode("utf-8"), value)
            policy = self.policy.policy_hash
            self.metrics.actions_decided.labels(decision.action, decision.assignment, policy).inc()
        for suppression in step.suppressions:
            suppressed = self.metrics.actions_suppressed
            suppressed.labels(suppression.action, suppression.reason, self.policy.policy_hash).inc()

    def _record(self, d: Decision) -> dict[str, object]:
        return action_record(
            action_id=d.action_id,
            action=d.action,
            user_id=d.user_id,
            assignment=d.assignment,
            decided_at=d.decided_at,
            event_id=d.event_id,
            model_version=d.model_version,
            purchase=d.purchase,
            cart_abandon=d.cart_abandon,
            reason=d.reason,
            policy_hash=self.policy.policy_hash,
        )


def tracked(decision: Decision, horizon_ms: int) -> PendingPrediction:
    """A decision as the outcome join holds it: did the user buy within the horizon after?"""
    return PendingPrediction(
        event_id=decision.action_id,
        event_type="",  # not a propensity: no event type
        event_ts=decision.decided_at,
        purchase=decision.purchase,
        cart_abandon=decision.cart_abandon,
        model_version=decision.model_version,
        horizon_ms=horizon_ms,
        action=decision.action,
        control=decision.assignment == CONTROL,
    )
