"""The shared encoder: causality, cart tracking and a stable spec hash."""

import numpy as np

from model.features import (
    FEATURE_NAMES,
    N_FEATURES,
    EncoderState,
    encode_events,
    encode_step,
    feature_spec_hash,
    record_from_event,
)
from schemas.events import ShopEvent

T0 = 1_570_000_000_000


def ev(kind: str, item: str, seconds: int, **kw: object) -> ShopEvent:
    return ShopEvent(kind, "u", item, T0 + seconds * 1000, **kw)  # type: ignore[arg-type]


def test_features_of_an_event_ignore_later_events() -> None:
    events = [
        ev("view", "a", 0, price=5.0),
        ev("add_to_cart", "a", 30, price=5.0),
        ev("view", "b", 90),
    ]
    full, _ = encode_events(events)
    for t in range(1, len(events) + 1):
        prefix, _ = encode_events(events[:t])
        np.testing.assert_array_equal(prefix, full[:t])


def test_cart_follows_adds_removes_and_purchases() -> None:
    events = [
        ev("add_to_cart", "a", 0, price=10.0, quantity=2),
        ev("add_to_cart", "b", 10, price=1.0),
        ev("remove_from_cart", "b", 20),
        ev("purchase", "a", 30, price=10.0),
    ]
    features, carts = encode_events(events)
    assert carts == [1, 2, 1, 0]
    col = FEATURE_NAMES.index("item_in_cart")
    assert features[:, col].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_new_session_on_gap_or_session_change() -> None:
    events = [
        ev("view", "a", 0, session_id="s1"),
        ev("view", "a", 60, session_id="s1"),
        ev("view", "a", 120, session_id="s2"),
        ev("view", "a", 120 + 3600, session_id="s2"),
    ]
    features, _ = encode_events(events)
    col = FEATURE_NAMES.index("is_new_session")
    assert features[:, col].tolist() == [1.0, 0.0, 1.0, 1.0]


def test_step_and_fold_agree() -> None:
    events = [ev("view", str(i % 3), i * 7, price=float(i)) for i in range(20)]
    state = EncoderState()
    rows = [encode_step(state, record_from_event(e)) for e in events]
    folded, _ = encode_events(events)
    np.testing.assert_allclose(np.asarray(rows, np.float32), folded)
    assert folded.shape == (20, N_FEATURES)
    assert np.isfinite(folded).all()


def test_spec_hash_is_stable() -> None:
    assert feature_spec_hash() == feature_spec_hash()
    assert len(feature_spec_hash()) == 16
