"""The closed loop's pure parts: the contract's hash split and action id, the label rule on
purchase times, the stand-in policy, and which decisions become outcome records."""

from schemas.events import ShopEvent
from schemas.units import DAY_MS, HOUR_MS
from streams.harness.uplift_loop import (
    CART_REMINDER,
    CartReminderOncePerDay,
    Decision,
    LoopRun,
    Propensity,
    converted,
    outcome_records,
)

DAY0 = 19_723 * DAY_MS  # a UTC midnight


def test_converted_is_the_first_purchase_at_or_after_the_decision_within_the_horizon() -> None:
    assert converted([DAY0 - 1, DAY0 + HOUR_MS], DAY0, DAY_MS) == 1
    assert converted([DAY0], DAY0, DAY_MS) == 1  # at the decision's own time
    assert converted([DAY0 - 1], DAY0, DAY_MS) == 0
    assert converted([DAY0 + DAY_MS], DAY0, DAY_MS) == 1  # the horizon's end is inside
    assert converted([DAY0 + DAY_MS + 1], DAY0, DAY_MS) == 0
    assert converted([], DAY0, DAY_MS) == 0


def propensity(user: str, ts: int, event_type: str, cart_abandon: float | None) -> Propensity:
    event = ShopEvent(event_type, user, "i1", ts, f"{user}-{ts}", "v", "c", 10.0, 1)
    return Propensity(event, 0.5, cart_abandon)


def test_stand_in_policy_reminds_once_per_user_per_utc_day() -> None:
    decide = CartReminderOncePerDay()
    assert decide(propensity("a", DAY0 + 1, "add_to_cart", 0.7)) == [CART_REMINDER]
    assert decide(propensity("a", DAY0 + 2, "add_to_cart", 0.9)) == []  # same day
    assert decide(propensity("b", DAY0 + 3, "add_to_cart", 0.49)) == []  # below the score
    assert decide(propensity("b", DAY0 + 4, "view", 0.9)) == []  # not an add to cart
    assert decide(propensity("b", DAY0 + 5, "add_to_cart", None)) == []
    assert decide(propensity("a", DAY0 + DAY_MS, "add_to_cart", 0.5)) == [CART_REMINDER]


def test_outcome_records_follow_the_contract_and_skip_open_horizons() -> None:
    closed = Decision("a" * 32, CART_REMINDER, "u1", "treatment", DAY0)
    still_open = Decision("b" * 32, CART_REMINDER, "u2", "control", DAY0 + DAY_MS)
    run = LoopRun([closed, still_open], {"u1": [DAY0 + HOUR_MS]}, DAY0 + DAY_MS + HOUR_MS, 0)
    (record,) = outcome_records(run, DAY_MS)
    assert record == {
        "action_id": "a" * 32,
        "action": CART_REMINDER,
        "user_id": "u1",
        "assignment": "treatment",
        "decided_at": DAY0,
        "horizon_ms": DAY_MS,
        "converted": 1,
        "resolved_at": DAY0 + HOUR_MS,  # at the purchase
    }
