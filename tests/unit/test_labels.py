"""Labels: purchase within the horizon, cart abandonment, masking at the data end, no leakage."""

import numpy as np
import pytest

from model.serving.labels import label_user, next_purchase_ts
from model.serving.user_state import ADD_TO_CART, PURCHASE, VIEW
from model.training.data import build_dataset
from schemas.events import ShopEvent

MIN = 60_000
H = 30 * MIN


def ev(kind: str, t_min: float, user: str = "u", item: str = "i1") -> ShopEvent:
    return ShopEvent(kind, user, item, int(t_min * MIN), session_id="s", price=10.0)


def test_next_purchase_is_strictly_later_by_position() -> None:
    ts = np.array([0, 5, 5, 9])
    types = np.array([VIEW, PURCHASE, PURCHASE, VIEW])
    assert next_purchase_ts(ts, types).tolist() == [5, 5, -1, -1]


def test_purchase_label_respects_horizon_boundary() -> None:
    ts = np.array([0, 10, 40, 41]) * MIN
    types = np.array([VIEW, VIEW, PURCHASE, VIEW])
    labels = label_user(ts, types, np.zeros(4), horizon_ms=H, data_end_ms=200 * MIN)
    # 0 -> purchase at 40 is beyond 0+30; 10 -> 40 is exactly 10+30 (inclusive); the purchase
    # itself has no later purchase.
    assert labels.purchase_within_horizon.tolist() == [0, 1, 0, 0]
    assert labels.purchase_mask.all()


def test_events_whose_horizon_passes_the_data_end_are_masked_not_negative() -> None:
    ts = np.array([0, 50, 71, 90]) * MIN
    types = np.array([VIEW, VIEW, VIEW, VIEW])
    labels = label_user(ts, types, np.zeros(4), horizon_ms=H, data_end_ms=100 * MIN)
    assert labels.purchase_mask.tolist() == [True, True, False, False]


def test_cart_abandon_defined_only_with_a_non_empty_cart() -> None:
    ts = np.array([0, 1, 2, 3, 60]) * MIN
    types = np.array([VIEW, ADD_TO_CART, VIEW, ADD_TO_CART, PURCHASE])
    carts = np.array([0, 1, 1, 2, 1])
    labels = label_user(ts, types, carts, horizon_ms=H, data_end_ms=500 * MIN)
    assert labels.cart_abandon_mask.tolist() == [False, True, True, True, True]
    # the purchase at 60 is more than 30 min after the cart adds: abandoned within H
    assert labels.cart_abandon[1:].tolist() == [1, 1, 1, 1]


def test_unsorted_times_are_rejected() -> None:
    with pytest.raises(ValueError):
        label_user(np.array([5, 1]), np.array([0, 0]), np.zeros(2), horizon_ms=H, data_end_ms=10)


def test_dataset_sorts_each_user_and_uses_the_encoder_cart() -> None:
    events = [
        ev("purchase", 20, item="a"),
        ev("add_to_cart", 5, item="a"),
        ev("view", 0, item="a"),
        ev("view", 1, user="other"),
        ev("view", 300, user="late"),
    ]
    data = build_dataset(events, horizon_ms=H)
    user = next(u for u in data.users if u.user_id == "u")
    assert user.ts.tolist() == [0, 5 * MIN, 20 * MIN]
    assert user.cart_items.tolist() == [0, 1, 0]  # the purchase empties the encoder's cart
    assert user.labels.purchase_within_horizon.tolist() == [1, 1, 0]
    assert user.labels.cart_abandon_mask.tolist() == [False, True, False]
    assert user.labels.cart_abandon[1] == 0  # bought 15 min later: not abandoned
    assert data.data_end_ms == 300 * MIN


def test_features_do_not_depend_on_later_events_but_labels_may() -> None:
    """Leakage check: changing the future changes labels, never an earlier event's features."""
    past = [ev("view", 0), ev("add_to_cart", 2), ev("view", 4, item="i2")]
    bought = build_dataset([*past, ev("purchase", 10), ev("view", 200)], horizon_ms=H).users[0]
    left = build_dataset([*past, ev("view", 10, item="i3"), ev("view", 200)], horizon_ms=H).users[0]
    np.testing.assert_array_equal(bought.features[:3], left.features[:3])
    assert bought.labels.purchase_within_horizon[:3].tolist() == [1, 1, 1]
    assert left.labels.purchase_within_horizon[:3].tolist() == [0, 0, 0]
