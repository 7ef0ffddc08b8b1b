"""The outcome join's pure step: propensity records -> outcome records and new pending lists.

No Faust, no Kafka, no metrics. Each propensity becomes a pending prediction of its user; a
later purchase of the user within its horizon resolves it positive, the partition's event-time
watermark passing the end of its horizon resolves it negative (``sweep``). The rule is
``model.serving.labels``' (``bought_within``, ``horizon_closed``), the one training uses.

A prediction resolved positive stays in the list, marked, until its horizon ends: a copy of
its propensity republished after a scoring worker's restart is then recognised by its event
id (and skipped) instead of starting over and ending with another label.

Labels depend only on the order of the records in their partition, never on when a sweep
runs: before a user's record is applied, every prediction of the user whose horizon the
watermark has closed is resolved negative, exactly as a sweep would have.
"""

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

import orjson

from model.serving.labels import bought_within, horizon_closed
from schemas.events import EVENT_TYPE_INDEX
from schemas.outputs import (
    CONTROL,
    RESOLVED_BY_HORIZON,
    RESOLVED_BY_PURCHASE,
    TREATMENT,
    action_outcome_record,
    encode,
    outcome_record,
)
from streams.worker.outcome_join.pending import MAX_ID_BYTES, PendingList, PendingPrediction
from streams.worker.scoring_step import InputRecord, OutputRecord

# Why a propensity record was skipped (the label of propensity_outcome_skipped_total).
MALFORMED = "malformed"
NO_HORIZON = "no_horizon"
UNKNOWN_MODEL = "unknown_model"
TOO_LATE = "too_late"
DUPLICATE = "duplicate"  # the same event id is held already (its propensity published twice)
REDELIVERED = "redelivered"  # the user's list has applied this record already


@dataclass(frozen=True, slots=True)
class JoinConfig:
    allowed_lateness_ms: int  # how far behind the newest event time an event may still arrive
    max_pending_per_user: int  # beyond it the oldest are dropped (resolved first; see drop_oldest)
    model_versions: frozenset[str] | None = None  # predictions of other versions are skipped


class Watermarks:
    """Per partition, the newest event time seen; events up to ``known_until`` are all in.

    With ``now_ms`` (the wall clock; the agent passes it), an event dated ahead of it moves the
    watermark only up to it: a producer's skewed clock (the decoder accepts up to
    PROPENSITY_MAX_FUTURE_SKEW_SECONDS ahead) must not close horizons early. A replay of past
    events never reaches the wall clock, so it is not affected.
    """

    def __init__(
        self,
        allowed_lateness_ms: int,
        newest: dict[int, int] | None = None,
        now_ms: int | None = None,
    ) -> None:
        self.allowed_lateness_ms = allowed_lateness_ms
        self.newest: dict[int, int] = dict(newest or {})
        self.now_ms = now_ms
        self.changed: set[int] = set()

    def advance(self, partition: int, event_ts: int) -> None:
        if self.now_ms is not None:
            event_ts = min(event_ts, self.now_ms)
        if event_ts > self.newest.get(partition, -(2**62)):
            self.newest[partition] = event_ts
            self.changed.add(partition)

    def known_until(self, partition: int) -> int:
        """The event time up to which no event of ``partition`` can still arrive."""
        newest = self.newest.get(partition)
        return -(2**62) if newest is None else newest - self.allowed_lateness_ms - 1


@dataclass(frozen=True, slots=True)
class Outcome:
    user_id: str
    prediction: PendingPrediction
    purchase_label: int
    resolved_by: str
    resolved_at: int  # event time: the purchase's, or the end of the horizon

    @property
    def cart_abandon_label(self) -> int | None:
        return None if self.prediction.cart_abandon is None else 1 - self.purchase_label

    @property
    def is_action(self) -> bool:
        """An action's outcome (for the uplift), not a propensity's."""
        return self.prediction.action is not None

    @property
    def output(self) -> OutputRecord:
        p = self.prediction
        if p.action is not None:
            return OutputRecord(
                self.user_id.encode("utf-8"),
                encode(
                    action_outcome_record(
                        action_id=p.event_id,
                        action=p.action,
                        user_id=self.user_id,
                        assignment=CONTROL if p.control else TREATMENT,
                        decided_at=p.event_ts,
                        horizon_ms=p.horizon_ms,
                        converted=self.purchase_label,
                        resolved_at=self.resolved_at,
                    )
                ),
            )
        message = outcome_record(
            event_id=p.event_id,
            user_id=self.user_id,
            model_version=p.model_version,
            event_type=p.event_type,
            event_ts=p.event_ts,
            horizon_ms=p.horizon_ms,
            purchase=p.purchase,
            cart_abandon=p.cart_abandon,
            purchase_label=self.purchase_label,
            cart_abandon_label=self.cart_abandon_label,
            resolved_by=self.resolved_by,
            resolved_at=self.resolved_at,
        )
        return OutputRecord(self.user_id.encode("utf-8"), encode(message))


@dataclass(frozen=True, slots=True)
class Skipped:
    record: InputRecord
    reason: str
    detail: str


class NewPending:
    """A user's new pending list and the partition its table record belongs to."""

    __slots__ = ("partition", "pending")

    def __init__(self, partition: int, pending: PendingList) -> None:
        self.partition = partition
        self.pending = pending

    @property
    def predictions(self) -> list[PendingPrediction]:
        return self.pending.predictions


@dataclass(slots=True)
class JoinResult:
    outcomes: list[Outcome] = field(default_factory=list)
    pending: dict[str, NewPending] = field(default_factory=dict)  # user -> list to store
    skipped: list[Skipped] = field(default_factory=list)
    evicted: int = 0
    added: int = 0  # predictions that became pending

    def skipped_as(self, reason: str) -> list[Skipped]:
        return [s for s in self.skipped if s.reason == reason]


# The table's read: a user's pending list (an empty one when none).
PendingReader = Callable[[str], PendingList]


class InvalidPropensity(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def join_batch(
    records: Sequence[InputRecord],
    read_pending: PendingReader,
    watermarks: Watermarks,
    config: JoinConfig,
) -> JoinResult:
    """Apply one micro-batch of propensity records, in order, to the users' pending lists."""
    result = JoinResult()
    lists: dict[str, NewPending] = result.pending
    for record in records:
        try:
            user, prediction = parse_propensity(record, config)
        except InvalidPropensity as exc:
            result.skipped.append(Skipped(record, exc.reason, exc.detail))
            continue
        partition = record.partition
        entry = lists.get(user)
        if entry is None:
            entry = lists[user] = NewPending(partition, read_pending(user))
        entry.partition = partition
        pending = entry.pending
        if record.offset <= pending.applied_offset:
            result.skipped.append(Skipped(record, REDELIVERED, "applied before a restart"))
            continue
        pending.applied_offset = record.offset
        watermarks.advance(partition, prediction.event_ts)
        known_until = watermarks.known_until(partition)
        if horizon_closed(prediction.event_ts, prediction.horizon_ms, known_until):
            detail = f"event time {prediction.event_ts}: its horizon closed before it arrived"
            result.skipped.append(Skipped(record, TOO_LATE, detail))
            continue
        held = resolve_closed(user, pending.predictions, known_until, result.outcomes)
        if any(p.event_id == prediction.event_id for p in held):
            result.skipped.append(Skipped(record, DUPLICATE, "already pending or resolved"))
            pending.predictions = held
            continue
        if prediction.event_type == "purchase":
            held = resolve_purchase(user, held, prediction.event_ts, result.outcomes)
        held.append(prediction)
        if len(held) > config.max_pending_per_user:
            held = drop_oldest(held, config.max_pending_per_user, result)
        pending.predictions = held
        result.added += 1
    return result


def track_action(
    user: str,
    partition: int,
    action: PendingPrediction,
    lists: dict[str, NewPending],
    read_pending: PendingReader,
) -> None:
    """Hold a decided action (``action.action`` set) in its user's list until the join knows
    whether the user bought within its horizon: the same rule, watermark and sweep as the
    propensities, its outcome published as an action-outcome record."""
    entry = lists.get(user)
    if entry is None:
        entry = lists[user] = NewPending(partition, read_pending(user))
    held = entry.pending.predictions
    if not any(p.event_id == action.event_id for p in held):  # a redelivered decision
        entry.pending.predictions = [*held, action]


def sweep(users: Iterable[tuple[str, int, PendingList]], watermarks: Watermarks) -> JoinResult:
    """Resolve negative every prediction whose horizon the watermark of its partition has
    closed, for users who may never come back; returns the changed lists only."""
    result = JoinResult()
    for user, partition, pending in users:
        known_until = watermarks.known_until(partition)
        kept = resolve_closed(user, pending.predictions, known_until, result.outcomes)
        if len(kept) != len(pending.predictions):
            result.pending[user] = NewPending(partition, PendingList(pending.applied_offset, kept))
    return result


def resolve_closed(
    user: str, pending: list[PendingPrediction], known_until: int, outcomes: list[Outcome]
) -> list[PendingPrediction]:
    """Drop the predictions whose horizon has closed, resolving negative those still open;
    return the others."""
    kept = []
    for p in pending:
        if not horizon_closed(p.event_ts, p.horizon_ms, known_until):
            kept.append(p)
        elif not p.resolved:
            outcomes.append(Outcome(user, p, 0, RESOLVED_BY_HORIZON, p.deadline_ms))
    return kept


def resolve_purchase(
    user: str, pending: list[PendingPrediction], purchase_ts: int, outcomes: list[Outcome]
) -> list[PendingPrediction]:
    """Resolve positive the open predictions this purchase falls within the horizon of (they
    stay in the list, marked resolved)."""
    kept = []
    for p in pending:
        if not p.resolved and bought_within(p.event_ts, purchase_ts, p.horizon_ms):
            outcomes.append(Outcome(user, p, 1, RESOLVED_BY_PURCHASE, purchase_ts))
            p = replace(p, resolved=True)
        kept.append(p)
    return kept


def drop_oldest(
    held: list[PendingPrediction], keep: int, result: JoinResult
) -> list[PendingPrediction]:
    """Keep ``keep`` predictions: drop the oldest resolved ones first (they only guard against
    republished copies), then the oldest open ones (counted: their labels are lost)."""
    excess = len(held) - keep
    resolved = [i for i, p in enumerate(held) if p.resolved][:excess]
    dropped = set(resolved)
    open_needed = excess - len(dropped)
    if open_needed > 0:
        dropped.update([i for i, p in enumerate(held) if not p.resolved][:open_needed])
        result.evicted += open_needed
    return [p for i, p in enumerate(held) if i not in dropped]


def parse_propensity(record: InputRecord, config: JoinConfig) -> tuple[str, PendingPrediction]:
    """The user and pending prediction of a propensity record; InvalidPropensity otherwise."""
    try:
        message = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError as exc:
        raise InvalidPropensity(MALFORMED, f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise InvalidPropensity(MALFORMED, "not a JSON object")
    horizon = message.get("horizon_ms")
    if not _is_int(horizon) or horizon <= 0:
        raise InvalidPropensity(NO_HORIZON, f"horizon_ms is {horizon!r}, not a positive integer")
    version = message.get("model_version")
    if not isinstance(version, str) or not version:
        raise InvalidPropensity(MALFORMED, "model_version is not a non-empty string")
    if config.model_versions is not None and version not in config.model_versions:
        raise InvalidPropensity(UNKNOWN_MODEL, f"model_version {version[:100]!r} is not served")
    user = _text(message, "user_id")
    event_id = _text(message, "event_id")
    if len(event_id.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidPropensity(MALFORMED, f"event_id longer than {MAX_ID_BYTES} bytes")
    event_type = message.get("event_type")
    if event_type not in EVENT_TYPE_INDEX:
        raise InvalidPropensity(MALFORMED, f"event_type {str(event_type)[:50]!r} is unknown")
    event_ts = message.get("event_ts")
    if not _is_int(event_ts) or event_ts < 0:
        raise InvalidPropensity(MALFORMED, f"event_ts {event_ts!r} is not epoch ms")
    scores = message.get("scores")
    if not isinstance(scores, dict):
        raise InvalidPropensity(MALFORMED, "scores is not an object")
    purchase = _probability(scores.get("purchase"), "purchase")
    cart = scores.get("cart_abandon")
    cart_abandon = None if cart is None else _probability(cart, "cart_abandon")
    assert isinstance(event_type, str)
    return user, PendingPrediction(
        event_id, event_type, event_ts, purchase, cart_abandon, version, horizon
    )


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidPropensity(MALFORMED, f"{name} is not a non-empty string")
    return value


def _probability(value: Any, head: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidPropensity(MALFORMED, f"{head} score {value!r} is not a number")
    score = float(value)
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise InvalidPropensity(MALFORMED, f"{head} score {score!r} is not a probability")
    return score
