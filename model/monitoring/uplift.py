"""Uplift of actions from their outcome records: conversion in treatment minus control, with
Newcombe's hybrid score interval.

Each user counts once per action, at the user's first decision of that action (intention to
treat at first eligibility): later decisions depend on what the first treatment did, so
counting them would compare groups that are no longer alike. Records arrive in the order
their outcomes resolve (a conversion resolves before a horizon does), so the table keeps the
earliest-decided record per user and action, whatever the arrival order.
"""

import math
from typing import Any, Final, NamedTuple

import orjson

from model.monitoring.outcomes import MISSING_FIELD, NOT_AN_OBJECT, NOT_JSON, WRONG_TYPE
from schemas.exceptions import PropensityError

Z_95: Final = 1.959964  # the standard normal's 97.5 % quantile
ASSIGNMENTS: Final = ("treatment", "control")
# Reasons an action-outcome record is skipped, each a bounded metric label: the outcome
# records' codes (NOT_JSON, NOT_AN_OBJECT, MISSING_FIELD, WRONG_TYPE), and these.
BAD_ASSIGNMENT: Final = "bad_assignment"
BAD_CONVERTED: Final = "bad_converted"
DUPLICATE: Final = "duplicate"  # not malformed: a redelivered action_id, counted apart


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for a proportion; (NaN, NaN) when n is 0."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At 0/n and n/n one limit is exactly 0 or 1; rounding would leave 1e-16 off it.
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def newcombe_difference(
    x1: int, n1: int, x0: int, n0: int, z: float = Z_95
) -> tuple[float, float, float]:
    """(p1 - p0, low, high): Newcombe's hybrid score interval (1998, method 10), built from
    the two groups' Wilson intervals; all NaN when either group is empty."""
    if n1 <= 0 or n0 <= 0:
        return math.nan, math.nan, math.nan
    p1, p0 = x1 / n1, x0 / n0
    l1, u1 = wilson_interval(x1, n1, z)
    l0, u0 = wilson_interval(x0, n0, z)
    difference = p1 - p0
    low = difference - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return difference, low, high


class ActionOutcome(NamedTuple):
    """What the uplift needs of one action-outcome record."""

    action_id: str
    action: str
    user_id: str
    assignment: str
    decided_at: int
    converted: int


class MalformedActionOutcome(PropensityError):
    """An action-outcome record the table cannot use; ``reason`` is one of the codes above."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def parse_action_outcome(record: Any) -> ActionOutcome:
    """Check a decoded action-outcome record (the contract's JSON object)."""
    if not isinstance(record, dict):
        raise MalformedActionOutcome(NOT_AN_OBJECT, f"got {type(record).__name__}")
    strings = [_field(record, name, str) for name in ("action_id", "action", "user_id")]
    if not all(strings):
        raise MalformedActionOutcome(WRONG_TYPE, "action_id, action and user_id must be non-empty")
    assignment = _field(record, "assignment", str)
    if assignment not in ASSIGNMENTS:
        raise MalformedActionOutcome(BAD_ASSIGNMENT, f"assignment {assignment!r}")
    decided_at = _field(record, "decided_at", int)
    converted = _field(record, "converted", int)
    if converted not in (0, 1):
        raise MalformedActionOutcome(BAD_CONVERTED, f"converted {converted!r}")
    action_id, action, user_id = strings
    return ActionOutcome(action_id, action, user_id, assignment, decided_at, converted)


def _field(record: dict[str, Any], name: str, kind: type) -> Any:
    if name not in record:
        raise MalformedActionOutcome(MISSING_FIELD, f"no {name!r}")
    value = record[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedActionOutcome(WRONG_TYPE, f"{name!r} is {type(value).__name__}")
    return value


class ArmFigures(NamedTuple):
    """One assignment group of one action: distinct users, how many converted, the rate."""

    users: int
    conversions: int
    rate: float  # NaN without users


class UpliftFigures(NamedTuple):
    """One action's row: both groups, the uplift with its 95 % interval, and the purchases
    the action added among the treated users (uplift × treated users)."""

    action: str
    treatment: ArmFigures
    control: ArmFigures
    uplift: float
    ci_low: float
    ci_high: float
    incremental_purchases: float


class UpliftTable:
    """Action-outcome records in, per-action uplift out; never raises on a record."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        # (action, user_id) -> the user's earliest-decided outcome of that action
        self._first: dict[tuple[str, str], ActionOutcome] = {}
        self.skipped: dict[str, int] = {}

    def observe_value(self, value: bytes | None) -> str | None:
        """Take one Kafka record value (JSON); the reason when it was skipped."""
        try:
            record = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            return self._skip(NOT_JSON)
        return self.observe(record)

    def observe(self, record: Any) -> str | None:
        """Take one decoded record; returns the reason when it was skipped (also counted)."""
        try:
            outcome = parse_action_outcome(record)
        except MalformedActionOutcome as exc:
            return self._skip(exc.reason)
        if outcome.action_id in self._seen:
            return self._skip(DUPLICATE)
        self._seen.add(outcome.action_id)
        key = (outcome.action, outcome.user_id)
        kept = self._first.get(key)
        if kept is None or (outcome.decided_at, outcome.action_id) < (
            kept.decided_at,
            kept.action_id,
        ):
            self._first[key] = outcome
        return None

    def _skip(self, reason: str) -> str:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        return reason

    def figures(self) -> list[UpliftFigures]:
        """One row per action seen, sorted by action name."""
        counts: dict[tuple[str, str], list[int]] = {}
        for (action, _), outcome in self._first.items():
            tally = counts.setdefault((action, outcome.assignment), [0, 0])
            tally[0] += 1
            tally[1] += outcome.converted
        actions = sorted({action for action, _ in counts})
        return [_row(action, counts) for action in actions]


def _row(action: str, counts: dict[tuple[str, str], list[int]]) -> UpliftFigures:
    treated, treated_conversions = counts.get((action, "treatment"), [0, 0])
    controls, control_conversions = counts.get((action, "control"), [0, 0])
    uplift, low, high = newcombe_difference(
        treated_conversions, treated, control_conversions, controls
    )
    return UpliftFigures(
        action,
        _arm(treated, treated_conversions),
        _arm(controls, control_conversions),
        uplift,
        low,
        high,
        uplift * treated,
    )


def _arm(users: int, conversions: int) -> ArmFigures:
    return ArmFigures(users, conversions, conversions / users if users else math.nan)
