"""The pure decision step: the issue's scripted cases (cooldown, daily cap, quiet hours,
inactivity, priority, control group, redelivery, malformed input)."""

import hashlib
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schemas.units import HOUR_MS, MINUTE_MS
from streams.worker.actions.decide import (
    Step,
    action_id,
    assignment,
    next_due_ms,
    on_propensity,
    on_time,
)
from streams.worker.actions.local_time import next_day_start_ms
from streams.worker.actions.policy import Policy, parse_policy
from streams.worker.actions.state import ActionState

T0 = 1_790_000_000_000  # 2026-09-21 14:13:20 UTC

REMINDER = """
[actions.cart_reminder]
priority = 10
trigger = "inactivity"
head = "cart_abandon"
min_score = 0.7
inactive_minutes = 30
cart = "non_empty"
"""
NUDGE = """
[actions.nudge]
priority = 5
trigger = "event"
head = "purchase"
min_score = 0.5
event_types = ["add_to_cart"]
"""
DISCOUNT = """
[actions.discount]
priority = 1
trigger = "event"
head = "purchase"
min_score = 0.4
"""


def policy(*actions: str, zone: str = "UTC", cap: int = 0, control: float = 0.0) -> Policy:
    head = f'[policy]\nsalt = "2026-q4"\ncontrol_share = {control}\ntimezone = "{zone}"\n'
    return parse_policy((head + f"daily_cap = {cap}\n" + "".join(actions)).encode())


def propensity(
    ts: int,
    event_id: str,
    *,
    purchase: float = 0.6,
    cart_abandon: float | None = 0.8,
    event_type: str = "add_to_cart",
    user_id: str = "u1",
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "scores": {"purchase": purchase, "cart_abandon": cart_abandon},
        "cart_items": 0 if cart_abandon is None else 2,
        "model_version": "m1",
        "horizon_ms": HOUR_MS,
        "event_id": event_id,
        "event_type": event_type,
        "event_ts": ts,
        "scored_at": ts,
    }


def run(p: Policy, *inputs: dict[str, Any] | int, user_id: str = "u1") -> list[Step]:
    """Feed propensities (dicts) and watermarks (ints) in order; the steps."""
    state, steps = ActionState(user_id), []
    for item in inputs:
        step = on_time(state, item, p) if isinstance(item, int) else on_propensity(state, item, p)
        steps.append(step)
        state = step.state
    return steps


def decided(steps: list[Step]) -> list[tuple[str, int]]:
    return [(d.action, d.decided_at) for s in steps for d in s.decisions]


def suppressed(steps: list[Step]) -> list[tuple[str, str]]:
    return [(x.action, x.reason) for s in steps for x in s.suppressions]


def test_cooldown_suppresses_the_second_reminder() -> None:
    p = policy(REMINDER.replace("cart =", "cooldown_hours = 20\ncart ="))
    steps = run(
        p,
        propensity(T0, "e1"),
        T0 + 30 * MINUTE_MS,
        propensity(T0 + 2 * HOUR_MS, "e2"),
        T0 + 3 * HOUR_MS,
        propensity(T0 + 21 * HOUR_MS, "e3"),
        T0 + 22 * HOUR_MS,
    )
    assert decided(steps) == [
        ("cart_reminder", T0 + 30 * MINUTE_MS),
        ("cart_reminder", T0 + 21 * HOUR_MS + 30 * MINUTE_MS),
    ]
    assert suppressed(steps) == [("cart_reminder", "cooldown")]


def test_the_daily_cap_holds_across_actions_and_resets_the_next_day() -> None:
    p = policy(NUDGE, DISCOUNT, cap=2)
    steps = run(
        p,
        propensity(T0, "e1"),  # nudge
        propensity(T0 + MINUTE_MS, "e2", event_type="view"),  # discount
        propensity(T0 + 2 * MINUTE_MS, "e3"),  # capped
        propensity(T0 + 24 * HOUR_MS, "e4"),  # the next day
    )
    assert [a for a, _ in decided(steps)] == ["nudge", "discount", "nudge"]
    # The capped nudge passes the turn to the discount, which the cap stops too.
    assert suppressed(steps) == [
        ("discount", "lower_priority"),
        ("nudge", "daily_cap"),
        ("discount", "daily_cap"),
        ("discount", "lower_priority"),
    ]


def test_control_decisions_count_for_the_cap_too() -> None:
    p = policy(NUDGE, cap=1, control=0.99)
    steps = run(p, propensity(T0, "e1"), propensity(T0 + MINUTE_MS, "e2"))
    assert [d.assignment for s in steps for d in s.decisions] == ["control"]
    assert suppressed(steps) == [("nudge", "daily_cap")]


def test_quiet_hours_hold_the_decision_until_the_window_ends() -> None:
    p = policy(NUDGE + 'quiet_hours = "22:00-08:00"\n', zone="Europe/Berlin")
    late = int(datetime(2026, 9, 21, 21, 30, tzinfo=UTC).timestamp() * 1000)  # 23:30 local
    morning = int(datetime(2026, 9, 22, 6, 0, tzinfo=UTC).timestamp() * 1000)  # 08:00 local
    first = on_propensity(ActionState("u1"), propensity(late, "e1"), p)
    assert first.decisions == () and len(first.held) == 1
    assert next_due_ms(first.state, p) == morning
    assert on_time(first.state, morning - 1, p).decisions == ()
    released = on_time(first.state, morning, p)
    (decision,) = released.decisions
    assert (decision.decided_at, decision.deliver_at) == (late, morning)
    assert released.state.held == ()


def test_quiet_hours_drop_when_so_configured() -> None:
    p = policy(NUDGE + 'quiet_hours = "22:00-08:00"\nquiet_hours_mode = "drop"\n', DISCOUNT)
    steps = run(p, propensity(T0 - 14 * HOUR_MS - 13 * MINUTE_MS, "e1"))  # 00:00 UTC
    assert suppressed(steps) == [("nudge", "quiet_hours")]
    assert decided(steps) == [("discount", T0 - 14 * HOUR_MS - 13 * MINUTE_MS)]


def test_days_and_quiet_hours_follow_the_local_clock_on_a_dst_change_day() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # Clocks go forward at 02:00 on 2026-03-29: that day is 23 hours long, 08:00 is 06:00 UTC.
    day = date(2026, 3, 29).toordinal()
    assert next_day_start_ms(day, berlin) - next_day_start_ms(day - 1, berlin) == 23 * HOUR_MS
    before_midnight = int(datetime(2026, 3, 28, 22, 30, tzinfo=UTC).timestamp() * 1000)
    after_midnight = before_midnight + HOUR_MS  # 00:30 local on the 29th, 23:30 UTC on the 28th
    p = policy(NUDGE + 'quiet_hours = "22:00-08:00"\n', zone="Europe/Berlin", cap=1)
    steps = run(p, propensity(before_midnight, "e1"), propensity(after_midnight, "e2"))
    held = [d for s in steps for d in s.held]
    assert [d.event_id for d in held] == ["e1", "e2"]  # two local days: the cap of 1 holds
    morning = int(datetime(2026, 3, 29, 6, 0, tzinfo=UTC).timestamp() * 1000)
    assert {d.deliver_at for d in held} == {morning}
    in_utc = policy(NUDGE, cap=1)  # the same two events fall on one UTC day
    assert suppressed(
        run(in_utc, propensity(before_midnight, "e1"), propensity(after_midnight, "e2"))
    ) == [("nudge", "daily_cap")]


def test_inactivity_fires_x_minutes_after_the_last_event() -> None:
    p = policy(REMINDER)
    steps = run(
        p,
        propensity(T0, "e1"),
        propensity(T0 + 10 * MINUTE_MS, "e2"),
        T0 + 35 * MINUTE_MS,  # 30 minutes after e1, not after e2
        T0 + 40 * MINUTE_MS,
        T0 + 5 * HOUR_MS,
    )
    assert [len(s.decisions) for s in steps] == [0, 0, 0, 1, 0]
    assert next_due_ms(steps[1].state, p) == T0 + 40 * MINUTE_MS
    (decision,) = steps[3].decisions
    assert (decision.decided_at, decision.event_id) == (T0 + 40 * MINUTE_MS, "e2")
    assert decision.action_id == action_id("e2", "cart_reminder")
    assert decision.reason == "cart_abandon 0.80 >= 0.7, 30 min inactive after add_to_cart"
    assert steps[-1].state.empty or steps[-1].state.pending is None


def test_inactivity_does_not_fire_when_the_shopper_comes_back_first() -> None:
    p = policy(REMINDER)
    steps = run(
        p,
        propensity(T0, "e1"),
        propensity(T0 + 20 * MINUTE_MS, "e2", cart_abandon=None, event_type="purchase"),
        T0 + 5 * HOUR_MS,
    )
    assert decided(steps) == []
    assert steps[1].state.pending is None and next_due_ms(steps[1].state, p) is None


def test_a_shopper_back_after_x_minutes_gets_the_reminder_dated_at_x() -> None:
    # The watermark lagged: the user's next event shows the user was away the whole time.
    p = policy(REMINDER)
    steps = run(p, propensity(T0, "e1"), propensity(T0 + 45 * MINUTE_MS, "e2", cart_abandon=None))
    assert decided(steps) == [("cart_reminder", T0 + 30 * MINUTE_MS)]


def test_priority_picks_one_action() -> None:
    p = policy(NUDGE, DISCOUNT)
    (step,) = run(p, propensity(T0, "e1"))
    assert decided([step]) == [("nudge", T0)]
    assert suppressed([step]) == [("discount", "lower_priority")]
    cooled = policy(NUDGE.replace("min_score", "cooldown_hours = 1\nmin_score"), DISCOUNT)
    steps = run(cooled, propensity(T0, "e1"), propensity(T0 + MINUTE_MS, "e2"))
    assert decided(steps) == [("nudge", T0), ("discount", T0 + MINUTE_MS)]
    assert suppressed(steps) == [("discount", "lower_priority"), ("nudge", "cooldown")]


def test_control_share_over_100000_users() -> None:
    p = policy(NUDGE, control=0.1)
    control = sum(assignment(p, f"user-{i}", "nudge") == "control" for i in range(100_000))
    share = control / 100_000
    print(f"measured control share: {share:.4f} (setting 0.10)")
    assert abs(share - 0.10) <= 0.005


def test_assignment_is_the_contracts_hash() -> None:
    p = policy(NUDGE, control=0.1)

    def fraction(text: str) -> float:
        return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16) / 16**15

    # Fractions of sha256("2026-q4|<user>"), worked out once outside this code base.
    expected = {"u1": 0.5896, "u2": 0.0872, "shopper-42": 0.0940, "7781": 0.7882}
    for user, value in expected.items():
        assert fraction(f"2026-q4|{user}") == pytest.approx(value, abs=1e-4)
        want = "control" if value < 0.1 else "treatment"
        assert assignment(p, user, "nudge") == assignment(p, user, "nudge") == want


def test_the_per_action_holdout_adds_to_the_control_group() -> None:
    p = policy(NUDGE + "holdout_share = 0.5\n", DISCOUNT)
    users = [f"user-{i}" for i in range(10_000)]
    nudge = sum(assignment(p, u, "nudge") == "control" for u in users) / len(users)
    discount = sum(assignment(p, u, "discount") == "control" for u in users) / len(users)
    assert 0.47 < nudge < 0.53 and discount == 0.0


def test_a_redelivered_event_yields_the_same_action_id() -> None:
    p = policy(NUDGE)
    state = ActionState("u1")
    first = on_propensity(state, propensity(T0, "ev-1"), p)
    again = on_propensity(state, propensity(T0, "ev-1"), p)  # state not committed: replayed
    after = on_propensity(first.state, propensity(T0, "ev-1"), p)  # state committed
    ids = {d.action_id for s in (first, again, after) for d in s.decisions}
    assert ids == {"360e6944f0b4c1a887c069c01741dca9"}
    assert action_id("ev-1", "nudge") == hashlib.sha256(b"ev-1|nudge").hexdigest()[:32]


@pytest.mark.parametrize(
    "record",
    [
        None,
        [],
        {},
        {**propensity(T0, "e1"), "scores": None},
        {**propensity(T0, "e1"), "scores": {"purchase": 1.5, "cart_abandon": None}},
        {**propensity(T0, "e1"), "scores": {"purchase": float("nan"), "cart_abandon": None}},
        {**propensity(T0, "e1"), "scores": {"purchase": True, "cart_abandon": None}},
        {**propensity(T0, "e1"), "scores": {"purchase": 0.5}},
        {**propensity(T0, "e1"), "event_ts": "yesterday"},
        {**propensity(T0, "e1"), "event_type": "checkout"},
        {**propensity(T0, "e1"), "event_id": ""},
        {**propensity(T0, "e1"), "cart_value": -3},
        {**propensity(T0, "e1"), "cart_items": 1.5},
        propensity(T0, "e1", user_id="someone-else"),
    ],
)
def test_a_malformed_propensity_is_skipped_with_a_reason(record: object) -> None:
    state = ActionState("u1")
    step = on_propensity(state, record, policy(NUDGE, REMINDER))
    assert step.skipped and "\n" not in step.skipped
    assert step.state is state and step.decisions == () and step.suppressions == ()


def test_expired_state_is_dropped_and_nothing_is_due_after() -> None:
    p = policy(NUDGE.replace("min_score", "cooldown_hours = 2\nmin_score"), cap=3)
    state = on_propensity(ActionState("u1"), propensity(T0, "e1"), p).state
    assert not state.empty
    due = next_due_ms(state, p)
    assert due == T0 + 2 * HOUR_MS
    later = on_time(state, T0 + 2 * HOUR_MS, p).state
    assert later.last_decided == () and later.day_count == 1
    end = on_time(later, T0 + 24 * HOUR_MS, p).state
    assert end.empty and next_due_ms(end, p) is None
