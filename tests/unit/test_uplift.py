"""Uplift statistics: Wilson and Newcombe intervals against published values, and the
per-action table's counting (first decision per user, duplicates, malformed records)."""

import math
from typing import Any

import pytest

from model.monitoring.uplift import (
    BAD_ASSIGNMENT,
    BAD_CONVERTED,
    DUPLICATE,
    MISSING_FIELD,
    NOT_AN_OBJECT,
    WRONG_TYPE,
    UpliftTable,
    newcombe_difference,
    wilson_interval,
)

# Newcombe RG (1998) "Two-sided confidence intervals for the single proportion: comparison
# of seven methods", Stat Med 17:857-872, Table I, method 3 (Wilson score, no correction).
WILSON_PUBLISHED = [
    ((81, 263), (0.2553, 0.3662)),
    ((15, 148), (0.0624, 0.1605)),
    ((0, 20), (0.0, 0.1611)),
    ((1, 29), (0.0061, 0.1718)),
]
# Newcombe RG (1998) "Interval estimation for the difference between independent
# proportions: comparison of eleven methods", Stat Med 17:873-890, Table II, method 10
# (hybrid score, no continuity correction): examples (a), (b), (e)-(h).
NEWCOMBE_PUBLISHED = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0)),
    ((10, 10, 0, 10), (0.6075, 1.0)),
]


@pytest.mark.parametrize(("counts", "published"), WILSON_PUBLISHED)
def test_wilson_matches_published(counts: tuple[int, int], published: tuple[float, float]) -> None:
    low, high = wilson_interval(*counts)
    assert (round(low, 4), round(high, 4)) == published


@pytest.mark.parametrize(("counts", "published"), NEWCOMBE_PUBLISHED)
def test_newcombe_matches_published(
    counts: tuple[int, int, int, int], published: tuple[float, float]
) -> None:
    x1, n1, x0, n0 = counts
    difference, low, high = newcombe_difference(*counts)
    assert difference == pytest.approx(x1 / n1 - x0 / n0)
    assert (round(low, 4), round(high, 4)) == published


def test_wilson_edges() -> None:
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert 0.0 < wilson_interval(10, 10)[0] < 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_newcombe_with_an_empty_group_is_nan() -> None:
    assert all(math.isnan(v) for v in newcombe_difference(3, 10, 0, 0))
    assert all(math.isnan(v) for v in newcombe_difference(0, 0, 3, 10))


def test_newcombe_is_antisymmetric() -> None:
    d, low, high = newcombe_difference(56, 70, 48, 80)
    d2, low2, high2 = newcombe_difference(48, 80, 56, 70)
    assert (d2, low2, high2) == pytest.approx((-d, -high, -low))


def record(
    user: str,
    assignment: str,
    converted: int,
    decided_at: int = 1000,
    action: str = "cart_reminder",
    action_id: str | None = None,
) -> dict[str, Any]:
    return {
        "action_id": action_id or f"{action}-{user}-{decided_at}",
        "action": action,
        "user_id": user,
        "assignment": assignment,
        "decided_at": decided_at,
        "horizon_ms": 86_400_000,
        "converted": converted,
        "resolved_at": decided_at + 5,
    }


def test_table_counts_users_conversions_and_uplift() -> None:
    table = UpliftTable()
    for i in range(10):
        table.observe(record(f"t{i}", "treatment", int(i < 6)))
    for i in range(20):
        table.observe(record(f"c{i}", "control", int(i < 4)))
    (row,) = table.figures()
    assert (row.treatment.users, row.treatment.conversions) == (10, 6)
    assert (row.control.users, row.control.conversions) == (20, 4)
    assert row.treatment.rate == pytest.approx(0.6) and row.control.rate == pytest.approx(0.2)
    assert (row.uplift, row.ci_low, row.ci_high) == pytest.approx(newcombe_difference(6, 10, 4, 20))
    assert row.incremental_purchases == pytest.approx(0.4 * 10)


def test_a_user_counts_once_at_the_first_decision_whatever_the_arrival_order() -> None:
    table = UpliftTable()
    # The later decision converted and resolved first; the first decision did not convert.
    table.observe(record("u1", "treatment", 1, decided_at=5000))
    table.observe(record("u1", "treatment", 0, decided_at=1000))
    table.observe(record("u1", "treatment", 1, decided_at=9000))
    (row,) = table.figures()
    assert (row.treatment.users, row.treatment.conversions) == (1, 0)
    assert row.control.users == 0 and math.isnan(row.control.rate) and math.isnan(row.uplift)


def test_actions_are_counted_apart() -> None:
    table = UpliftTable()
    table.observe(record("u1", "treatment", 1, action="cart_reminder"))
    table.observe(record("u1", "control", 0, action="welcome_back"))
    rows = {row.action: row for row in table.figures()}
    assert rows["cart_reminder"].treatment.users == 1
    assert rows["welcome_back"].control.users == 1
    assert rows["welcome_back"].treatment.users == 0


def test_redelivered_records_are_skipped_as_duplicates() -> None:
    table = UpliftTable()
    assert table.observe(record("u1", "treatment", 1, action_id="a" * 32)) is None
    assert table.observe(record("u1", "treatment", 1, action_id="a" * 32)) == DUPLICATE
    (row,) = table.figures()
    assert row.treatment.users == 1
    assert table.skipped == {DUPLICATE: 1}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ([1, 2], NOT_AN_OBJECT),
        ({k: v for k, v in record("u", "control", 0).items() if k != "user_id"}, MISSING_FIELD),
        ({**record("u", "control", 0), "decided_at": "soon"}, WRONG_TYPE),
        ({**record("u", "control", 0), "decided_at": True}, WRONG_TYPE),
        ({**record("u", "control", 0), "action": ""}, WRONG_TYPE),
        ({**record("u", "control", 0), "assignment": "holdout"}, BAD_ASSIGNMENT),
        ({**record("u", "control", 0), "converted": 2}, BAD_CONVERTED),
        ({**record("u", "control", 0), "converted": 0.5}, WRONG_TYPE),
    ],
)
def test_malformed_records_are_counted_never_raised(bad: Any, reason: str) -> None:
    table = UpliftTable()
    assert table.observe(bad) == reason
    assert table.skipped == {reason: 1}
    assert table.figures() == []


def test_a_record_value_that_is_not_json_is_skipped_as_such() -> None:
    table = UpliftTable()
    assert table.observe_value(b"{not json") == "not_json"
    assert table.observe_value(None) == "not_json"
    assert table.skipped == {"not_json": 2} and table.figures() == []
