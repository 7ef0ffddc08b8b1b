"""The shared encoder: causality, cart tracking, named features and a stable spec hash."""

import ast
import inspect
import textwrap
from typing import TypedDict, Unpack

import numpy as np

from model.serving.user_state import (
    FEATURE_NAMES,
    MAX_RECENT_CATEGORIES,
    MAX_SESSION_CATEGORIES,
    N_FEATURES,
    EncoderState,
    FeatureRow,
    encode_events,
    encode_step,
    feature_spec_hash,
    record_from_event,
    stable_hash,
)
from schemas.events import EVENT_TYPES, ShopEvent

T0 = 1_570_000_000_000


class _Optional(TypedDict, total=False):
    """ShopEvent's optional fields."""

    event_id: str | None
    session_id: str | None
    category: str | None
    price: float | None
    quantity: int | None


def ev(kind: str, item: str, seconds: int, **kw: Unpack[_Optional]) -> ShopEvent:
    return ShopEvent(kind, "u", item, T0 + seconds * 1000, **kw)


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


def category_columns(events: list[ShopEvent]) -> dict[str, list[float]]:
    features, _ = encode_events(events)
    names = (
        "same_category_as_previous",
        "category_recent_share",
        "log_session_category_events",
        "session_dominant_category_share",
        "recent_dominant_category_share",
    )
    return {n: features[:, FEATURE_NAMES.index(n)].tolist() for n in names}


def test_category_features_on_a_small_sequence() -> None:
    events = [
        ev("view", "a", 0, session_id="s1", category="shoes"),
        ev("view", "b", 10, session_id="s1", category="shoes"),
        ev("view", "c", 20, session_id="s1", category="books"),
        ev("view", "d", 30, session_id="s1"),  # no category: matches nothing
        ev("view", "e", 40, session_id="s1", category="shoes"),
        ev("view", "f", 50, session_id="s2", category="books"),  # a new session
    ]
    cols = category_columns(events)
    assert cols["same_category_as_previous"] == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    # share of the (up to 8) earlier events in this event's category
    np.testing.assert_allclose(
        cols["category_recent_share"], [0.0, 1.0, 0.0, 0.0, 2 / 4, 1 / 5], rtol=1e-6
    )
    counts = [1, 2, 1, 0, 3, 1]  # events of this category in the session, this one included
    np.testing.assert_allclose(
        cols["log_session_category_events"], [np.log1p(c) / 4 for c in counts], rtol=1e-6
    )
    np.testing.assert_allclose(
        cols["session_dominant_category_share"], [1, 1, 2 / 3, 2 / 4, 3 / 5, 1], rtol=1e-6
    )
    np.testing.assert_allclose(
        cols["recent_dominant_category_share"], [1, 1, 2 / 3, 2 / 4, 3 / 5, 3 / 6], rtol=1e-6
    )


def test_category_features_are_causal_and_bounded() -> None:
    events = [
        ev("view", str(i), i * 10, category=f"c{i % 11}" if i % 4 else None) for i in range(60)
    ]
    full, _ = encode_events(events)
    for t in (1, 2, 9, 30, 59):
        prefix, _ = encode_events(events[:t])
        np.testing.assert_array_equal(prefix, full[:t])
    state = EncoderState()
    for e in events:
        encode_step(state, record_from_event(e))
    assert len(state.recent_categories) == MAX_RECENT_CATEGORIES
    assert len(state.session_categories) <= MAX_SESSION_CATEGORIES


def test_record_carries_a_stable_category_hash() -> None:
    assert record_from_event(ev("view", "a", 0, category="shoes")).category == stable_hash("shoes")
    assert record_from_event(ev("view", "a", 0)).category == 0


def test_visit_frequency_and_repeat_view_features() -> None:
    day = 86_400
    events = [
        ev("view", "a", 0, session_id="s1"),
        ev("view", "b", 10, session_id="s1"),
        ev("view", "a", 20, session_id="s1"),  # a repeat view of a recently viewed item
        ev("add_to_cart", "b", 30, session_id="s1"),  # b was viewed: in recent views
        ev("view", "c", day, session_id="s2"),  # a new session a day later
        ev("view", "b", day + 10, session_id="s2"),
    ]
    features, _ = encode_events(events)
    col = {n: features[:, FEATURE_NAMES.index(n)].tolist() for n in FEATURE_NAMES}
    assert col["item_in_recent_views"] == [0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    repeats = [0, 0, 1, 1, 0, 1]  # per session: reset when s2 starts
    np.testing.assert_allclose(
        col["log_session_repeat_views"], [np.log1p(r) / 3 for r in repeats], rtol=1e-6
    )
    sessions = [1, 1, 1, 1, 2, 2]
    np.testing.assert_allclose(
        col["log_sessions_total"], [np.log1p(s) / 4 for s in sessions], rtol=1e-6
    )
    elapsed = [0, 10, 20, 30, day, day + 10]
    np.testing.assert_allclose(
        col["log_sessions_per_day"],
        [np.log1p(s * day / (e + day)) for s, e in zip(sessions, elapsed, strict=True)],
        rtol=1e-6,
    )


def test_recent_views_keep_the_last_six_distinct_viewed_items() -> None:
    state = EncoderState()
    for i, item in enumerate("abcabdefgh"):
        encode_step(state, record_from_event(ev("view", item, i)))
    encode_step(state, record_from_event(ev("wishlist", "z", 20)))  # not a view
    assert state.recent_views == [stable_hash(x) for x in "cdefgh"]


def test_encode_step_returns_locals_named_like_the_feature_row_in_its_order() -> None:
    """The row is a list (fast for numpy); its names are FeatureRow's, so a value cannot sit
    under another feature's name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(encode_step)))
    (returned,) = [node.value for node in ast.walk(tree) if isinstance(node, ast.Return)]
    assert isinstance(returned, ast.List)
    assert tuple(getattr(e, "id", None) for e in returned.elts) == FEATURE_NAMES


def test_every_feature_has_a_line_in_the_table() -> None:
    table = FeatureRow.__doc__ or ""
    assert "is_<event type>, 5 columns" in table and len(EVENT_TYPES) == 5
    missing = [n for n in FEATURE_NAMES[len(EVENT_TYPES) :] if f"    {n} " not in table]
    assert [n for n in missing if n not in ("hour_sin", "hour_cos")] == []
    assert "    hour_sin, hour_cos " in table
