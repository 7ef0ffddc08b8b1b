"""THE event -> feature-vector encoder, shared by training, offline scoring and the stream.

Every feature of an event depends only on that event and the same user's earlier events,
folded through an ``EncoderState``. Nothing else in the project computes features.
"""

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np

from model.serving.user_state.records import (
    ADD_TO_CART,
    PURCHASE,
    REMOVE_FROM_CART,
    VIEW,
    EventRecord,
    record_from_event,
)
from schemas.events import EVENT_TYPES, ShopEvent

ENCODER_VERSION: Final = 3
SESSION_GAP_MS: Final = 30 * 60 * 1000
MAX_CART_ITEMS: Final = 32
MAX_RECENT_ITEMS: Final = 16
MAX_RECENT_CATEGORIES: Final = 8  # the last few events' categories, repeats kept
MAX_SESSION_CATEGORIES: Final = 8  # per-category event counts of the current session
MAX_RECENT_VIEWS: Final = 6  # distinct items last viewed: a repeat view signals intent
DAY_MS: Final = 86_400_000

FEATURE_NAMES: Final = (
    *(f"is_{name}" for name in EVENT_TYPES),
    "log_price",
    "log_quantity",
    "log_seconds_since_previous",
    "is_first_event",
    "is_new_session",
    "log_events_in_session",
    "log_session_seconds",
    "log_cart_items",
    "log_cart_value",
    "item_seen_recently",
    "item_in_cart",
    "hour_sin",
    "hour_cos",
    "log_events_total",
    "same_category_as_previous",
    "category_recent_share",
    "log_session_category_events",
    "session_dominant_category_share",
    "recent_dominant_category_share",
    "log_seconds_since_first_event",
    "log_sessions_total",
    "log_sessions_per_day",
    "item_in_recent_views",
    "log_session_repeat_views",
)
N_FEATURES: Final = len(FEATURE_NAMES)


def feature_spec_hash() -> str:
    """Fingerprint of the encoder: names, version and constants. Artifacts must match it."""
    spec = {
        "version": ENCODER_VERSION,
        "names": FEATURE_NAMES,
        "event_types": EVENT_TYPES,
        "session_gap_ms": SESSION_GAP_MS,
        "max_cart_items": MAX_CART_ITEMS,
        "max_recent_items": MAX_RECENT_ITEMS,
        "max_recent_categories": MAX_RECENT_CATEGORIES,
        "max_session_categories": MAX_SESSION_CATEGORIES,
        "max_recent_views": MAX_RECENT_VIEWS,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


class EncoderState:
    """What the encoder remembers about one user between events (advanced in place)."""

    __slots__ = (
        "cart",
        "first_ts",
        "n_events",
        "n_sessions",
        "prev_ts",
        "recent_categories",
        "recent_items",
        "recent_views",
        "session",
        "session_categories",
        "session_events",
        "session_repeat_views",
        "session_start",
    )

    def __init__(self) -> None:
        self.n_events = 0
        self.prev_ts = 0
        self.session = 0
        self.session_start = 0
        self.session_events = 0
        self.cart: dict[int, tuple[int, float]] = {}  # item -> (quantity, unit price)
        self.recent_items: list[int] = []
        self.recent_categories: list[int] = []  # oldest first, one per event, 0 = none
        self.session_categories: dict[int, int] = {}  # category -> events this session
        self.first_ts = 0
        self.n_sessions = 0
        self.recent_views: list[int] = []  # distinct items last viewed, oldest first
        self.session_repeat_views = 0  # views this session of an item in recent_views

    @property
    def cart_items(self) -> int:
        return len(self.cart)

    @property
    def cart_value(self) -> float:
        return sum(q * p for q, p in self.cart.values())


def _update_cart(state: EncoderState, record: EventRecord) -> None:
    cart = state.cart
    if record.event_type == ADD_TO_CART:
        quantity, _ = cart.pop(record.item, (0, 0.0))
        cart[record.item] = (quantity + record.quantity, record.price)
        if len(cart) > MAX_CART_ITEMS:
            del cart[next(iter(cart))]
    elif record.event_type in (REMOVE_FROM_CART, PURCHASE):
        cart.pop(record.item, None)


def _category_features(
    state: EncoderState, record: EventRecord, new_session: bool
) -> tuple[float, ...]:
    """Advance the category memory by one event; how consistent its categories are.

    A shopper who means to buy keeps looking within one category; one who browses drifts.
    An event without a category (0) matches nothing and is not counted in the session.
    """
    category = record.category
    recent = state.recent_categories
    if new_session:
        state.session_categories = {}
    counts = state.session_categories
    known = category != 0
    same_as_previous = known and bool(recent) and recent[-1] == category
    recent_share = recent.count(category) / len(recent) if known and recent else 0.0
    recent.append(category)
    if len(recent) > MAX_RECENT_CATEGORIES:
        del recent[0]
    in_session = 0
    if known:
        in_session = counts.pop(category, 0) + 1
        counts[category] = in_session  # most recently seen last
        if len(counts) > MAX_SESSION_CATEGORIES:
            smallest = min(counts.values())
            del counts[next(c for c, n in counts.items() if n == smallest)]
    session_dominant = max(counts.values(), default=0) / state.session_events
    tally: dict[int, int] = {}
    for c in recent:
        if c:
            tally[c] = tally.get(c, 0) + 1
    recent_dominant = max(tally.values(), default=0) / len(recent)
    return (
        1.0 if same_as_previous else 0.0,
        recent_share,
        math.log1p(in_session) / 4.0,
        session_dominant,
        recent_dominant,
    )


def encode_step(state: EncoderState, record: EventRecord) -> list[float]:
    """Advance ``state`` by one event and return that event's feature vector."""
    first = state.n_events == 0
    gap_ms = 0 if first else max(record.ts - state.prev_ts, 0)
    new_session = first or record.session != state.session or gap_ms > SESSION_GAP_MS
    if first:
        state.first_ts = record.ts
    if new_session:
        state.session = record.session
        state.session_start = record.ts
        state.session_events = 0
        state.session_repeat_views = 0
        state.n_sessions += 1
    in_recent_views = record.item in state.recent_views
    if record.event_type == VIEW:
        views = state.recent_views
        if in_recent_views:
            state.session_repeat_views += 1
        else:
            views.append(record.item)
            if len(views) > MAX_RECENT_VIEWS:
                del views[0]
    item_in_cart = record.item in state.cart
    seen_recently = record.item in state.recent_items
    _update_cart(state, record)
    state.n_events += 1
    state.session_events += 1
    state.prev_ts = record.ts
    recent = state.recent_items
    if seen_recently:
        recent.remove(record.item)
    recent.append(record.item)
    if len(recent) > MAX_RECENT_ITEMS:
        del recent[0]
    categories = _category_features(state, record, new_session)

    row = [0.0] * N_FEATURES
    row[record.event_type] = 1.0
    hour = (record.ts // 1000 % 86_400) / 3600.0
    row[5:] = (
        math.log1p(record.price) / 6.0,
        math.log1p(record.quantity),
        math.log1p(gap_ms / 1000.0) / 12.0,
        1.0 if first else 0.0,
        1.0 if new_session else 0.0,
        math.log1p(state.session_events) / 4.0,
        math.log1p((record.ts - state.session_start) / 1000.0) / 10.0,
        math.log1p(len(state.cart)) / 3.0,
        math.log1p(state.cart_value) / 8.0,
        1.0 if seen_recently else 0.0,
        1.0 if item_in_cart else 0.0,
        math.sin(2.0 * math.pi * hour / 24.0),
        math.cos(2.0 * math.pi * hour / 24.0),
        math.log1p(state.n_events) / 6.0,
        *categories,
        math.log1p((record.ts - state.first_ts) / 1000.0) / 14.0,
        math.log1p(state.n_sessions) / 4.0,
        math.log1p(state.n_sessions * DAY_MS / (record.ts - state.first_ts + DAY_MS)),
        1.0 if in_recent_views else 0.0,
        math.log1p(state.session_repeat_views) / 3.0,
    )
    return row


def encode_records(
    records: Iterable[EventRecord], state: EncoderState | None = None
) -> tuple[np.ndarray, EncoderState, list[int]]:
    """Fold a user's records (oldest first): features (T, F), final state, cart size after each."""
    state = EncoderState() if state is None else state
    rows: list[list[float]] = []
    cart_sizes: list[int] = []
    for record in records:
        rows.append(encode_step(state, record))
        cart_sizes.append(len(state.cart))
    features = np.asarray(rows, dtype=np.float32).reshape(len(rows), N_FEATURES)
    return features, state, cart_sizes


def encode_events(events: Sequence[ShopEvent]) -> tuple[np.ndarray, list[int]]:
    """Features (T, F) and cart sizes for one user's events, oldest first."""
    features, _, cart_sizes = encode_records(record_from_event(e) for e in events)
    return features, cart_sizes
