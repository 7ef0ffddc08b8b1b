"""One user's action state and the decisions the step makes: plain frozen dataclasses.

The state holds only what later decisions need: when each action was last decided (for
cooldowns), the local day and how many actions it has had (the daily cap), the user's latest
scored event while an inactivity action may still fire on it, and decisions held back by
quiet hours until their window ends.
"""

from dataclasses import dataclass, replace
from typing import Literal

from streams.worker.actions.assignment import Assignment

SuppressionReason = Literal["cooldown", "daily_cap", "quiet_hours", "lower_priority"]


@dataclass(frozen=True)
class ScoredEvent:
    """What a propensity event says about the user's event (the fields the policy reads)."""

    event_id: str
    event_type: str
    ts: int
    model_version: str
    purchase: float
    cart_abandon: float | None  # None: the cart is empty after the event
    cart_items: int | None  # None: not in the propensity event
    cart_value: float | None  # None: not in the propensity event

    def score(self, head: str) -> float | None:
        """The score of ``head`` ("purchase" or "cart_abandon")."""
        return self.purchase if head == "purchase" else self.cart_abandon


@dataclass(frozen=True)
class PendingTrigger:
    """The user's latest event, kept while an inactivity action may still fire on it.

    ``evaluated_until_ms``: inactivity rules due at or before this time (event ts + their
    inactive_minutes) have been decided already; the others are still to come.
    """

    event: ScoredEvent
    evaluated_until_ms: int


@dataclass(frozen=True)
class Decision:
    """An action decided for a user (treatment: to send; control: recorded, never sent).

    ``decided_at`` is the event time the rule fired at (the event's ts, or the last event's ts
    plus inactive_minutes); a decision held by quiet hours keeps it and is delivered at
    ``deliver_at``, the end of the window (``deliver_at == decided_at`` when not held).
    """

    action: str
    action_id: str
    user_id: str
    assignment: Assignment
    decided_at: int
    deliver_at: int
    event_id: str
    model_version: str
    purchase: float
    cart_abandon: float | None
    reason: str

    @property
    def held(self) -> bool:
        return self.deliver_at > self.decided_at


@dataclass(frozen=True)
class Suppression:
    """An action whose rule matched but that was not decided, and why."""

    action: str
    reason: SuppressionReason
    at: int  # event time of the would-be decision


@dataclass(frozen=True)
class ActionState:
    """One user's action state (a table value: replaced, never mutated)."""

    user_id: str
    last_decided: tuple[tuple[str, int], ...] = ()  # (action, decided_at), sorted by action
    day: int = 0  # local day (date ordinal) of ``day_count``; 0 = none yet
    day_count: int = 0
    pending: PendingTrigger | None = None
    held: tuple[Decision, ...] = ()  # by deliver_at

    def last_decided_at(self, action: str) -> int | None:
        return dict(self.last_decided).get(action)

    def with_decision(self, action: str | None, decided_at: int, day: int | None) -> "ActionState":
        """The state after a decision at ``decided_at``: remembered for ``action``'s cooldown
        and counted on local ``day`` (None: the policy has no cooldown / no cap to apply)."""
        state = self
        if action is not None:
            last = dict(self.last_decided)
            last[action] = max(decided_at, last.get(action, decided_at))
            state = replace(state, last_decided=tuple(sorted(last.items())))
        if day is not None:
            # A decision dated before the counted day (an out-of-order event) counts against it.
            count = self.day_count + 1 if day <= self.day else 1
            state = replace(state, day=max(day, self.day), day_count=count)
        return state

    @property
    def empty(self) -> bool:
        """Nothing left worth storing: the table entry can be deleted."""
        return not (self.last_decided or self.day_count or self.pending or self.held)
