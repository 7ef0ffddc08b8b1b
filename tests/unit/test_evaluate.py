"""Evaluation: metrics helpers, by-user bootstrap, leakage-free baseline features, the report."""

import numpy as np
import pytest

from model.evaluation.baseline_features import BASELINE_FEATURE_NAMES, user_features
from model.evaluation.bootstrap import interval, user_replicates
from model.evaluation.measures import (
    best_f1_threshold,
    binary_metrics,
    expected_calibration_error,
    lift_at,
)
from model.training.data import build_dataset
from schemas.events import ShopEvent
from tests.shop_data import HORIZON_MS, MIN, START, shop_events


def test_lift_and_ece_on_known_cases() -> None:
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1.0])
    p = np.linspace(1, 0, 10)
    assert lift_at(y, p, 0.1) == pytest.approx(5.0)
    assert lift_at(y, np.full(10, 0.2), 0.1) == pytest.approx(1.0)  # ties: no free lift
    assert expected_calibration_error(y, np.full(10, 0.2)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(10, 0.7)) == pytest.approx(0.5)


def test_threshold_maximises_f1_and_all_metrics_are_in_range() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.2).astype(float)
    p = np.clip(y * 0.4 + rng.random(500) * 0.6, 0, 1)
    threshold = best_f1_threshold(y, p)
    m = binary_metrics(y, p, threshold)
    assert 0.5 < m["roc_auc"] <= 1 and 0 < m["f1"] <= 1 and m["log_loss"] > 0
    for other in (threshold - 0.1, threshold + 0.1):
        assert binary_metrics(y, p, other)["f1"] <= m["f1"] + 1e-12


def test_bootstrap_weights_move_a_users_events_together() -> None:
    users = np.array([0, 0, 0, 1, 2, 2, 7])
    for w in user_replicates(users, 30, seed=1):
        assert w[0] == w[1] == w[2] and w[4] == w[5]
        assert w[[0, 3, 4, 6]].sum() == 4  # four users drawn per replicate
    assert interval(np.array([np.nan, 1.0, 2.0, 3.0])) == pytest.approx((1.05, 2.95))


def test_baseline_features_use_only_the_past() -> None:
    pairs = shop_events(60, seed=4)
    events = [e for e, _ in pairs]
    full = build_dataset(events, horizon_ms=HORIZON_MS)
    user = max(full.users, key=lambda u: len(u.ts))
    cut = len(user.ts) // 2
    mine = [e for e in events if e.user_id == user.user_id]
    truncated = build_dataset(mine[:cut], horizon_ms=HORIZON_MS).users[0]
    np.testing.assert_array_equal(user_features(user)[:cut], user_features(truncated))
    assert user_features(user).shape == (len(user.ts), len(BASELINE_FEATURE_NAMES))


def test_baseline_category_features_on_a_hand_made_sequence() -> None:
    """Two sessions of category "a" around a "b" and an event without a category."""
    plan = [  # (minutes after START, event type, category, session)
        (0, "view", "a", "s1"),
        (10, "view", "a", "s1"),
        (20, "view", "b", "s1"),
        (120, "view", "a", "s2"),  # new session; the first two "a" are over an hour ago
        (121, "view", None, "s2"),  # no category: matches nothing, counts nowhere
        (25 * 60, "add_to_cart", "a", "s3"),  # 24 h window reaches back to minute 60
    ]
    events = [
        ShopEvent(kind, "u", f"i{k}", START + m * MIN, session_id=s, category=c, price=5.0)
        for k, (m, kind, c, s) in enumerate(plan)
    ]
    user = build_dataset(events, horizon_ms=HORIZON_MS).users[0]
    x = user_features(user)
    column = {name: x[:, BASELINE_FEATURE_NAMES.index(name)] for name in BASELINE_FEATURE_NAMES}
    expected: dict[str, list[float]] = {
        "has_category": [1, 1, 1, 1, 0, 1],
        "same_category_as_previous": [0, 1, 0, 0, 0, 0],
        "n_category_1h": [1, 2, 1, 1, 0, 1],
        "n_category_24h": [1, 2, 1, 3, 0, 2],
        "n_category_all": [1, 2, 1, 3, 0, 4],
        "category_share_all": [1, 1, 1 / 3, 3 / 4, 0, 4 / 6],
        "distinct_categories": [1, 1, 2, 2, 2, 2],
        "session_category_events": [1, 2, 1, 1, 0, 1],
        "session_dominant_category_share": [1, 1, 2 / 3, 1, 1 / 2, 1],
    }
    for name, values in expected.items():
        np.testing.assert_allclose(column[name], values, rtol=1e-6, err_msg=name)
    # Causal: every prefix gives the same rows as the full sequence, and a later event in
    # another category does not change earlier rows.
    for cut in range(1, len(events)):
        prefix = build_dataset(events[:cut], horizon_ms=HORIZON_MS).users[0]
        np.testing.assert_array_equal(user_features(prefix), x[:cut])
    changed = [*events[:-1], ShopEvent("add_to_cart", "u", "i5", events[-1].ts, category="z")]
    np.testing.assert_array_equal(
        user_features(build_dataset(changed, horizon_ms=HORIZON_MS).users[0])[:-1], x[:-1]
    )
