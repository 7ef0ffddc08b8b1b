"""THE event -> feature encoder, shared by training, offline scoring and the stream.

Every feature of an event depends only on that event and the same user's earlier events,
folded through an ``EncoderState``: what the encoder remembers about the user. Nothing else
in the project computes features, and nothing else knows what they are: the feature count,
the spec hash artifacts must match and the stored state's byte layout all follow from here.

Adding a feature is done in this module alone: a field of ``FeatureRow`` and its line in the
table there, its value in ``encode_step`` (a local of the same name, returned in the row), a
stored field of ``EncoderState`` if it needs to remember something, and a new
``ENCODER_VERSION``; then a model trained on it. ``FeatureSpec`` is the encoder as one
object; a subclass of it can add a feature without editing this module (the unit tests do).
"""

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, NamedTuple

import numpy as np

from model.serving.user_state.records import (
    ADD_TO_CART,
    PURCHASE,
    REMOVE_FROM_CART,
    VIEW,
    WISHLIST,
    EventRecord,
    record_from_event,
)
from schemas.events import EVENT_TYPES, ShopEvent
from schemas.units import DAY_MS, MINUTE_MS

ENCODER_VERSION: Final = 3
SESSION_GAP_MS: Final = 30 * MINUTE_MS
MAX_CART_ITEMS: Final = 32
MAX_RECENT_ITEMS: Final = 16
MAX_RECENT_CATEGORIES: Final = 8  # the last few events' categories, repeats kept
MAX_SESSION_CATEGORIES: Final = 8  # per-category event counts of the current session
MAX_RECENT_VIEWS: Final = 6  # distinct items last viewed: a repeat view signals intent


class FeatureRow(NamedTuple):
    """One event's features, in the order the network reads them.

    Inputs reach the convolution unnormalised, so each count, duration or amount is squashed
    by log1p and divided by a scale: e**scale (last column) is the value that maps to 1.0, a
    large but ordinary value. No input then dominates the first layer, and no normaliser
    needs saving with the model. Shares and indicators are in [0, 1] already.

    feature                          value (of the event; memory after it)       scale  1.0 at
    is_<event type>, 5 columns       1 for the event's type, else 0 (one-hot)        -
    log_price                        log1p(price; 0 when absent)                     6  400
    log_quantity                     log1p(quantity; 1 when absent)                  1  (*)
    log_seconds_since_previous       log1p(seconds since the previous event)        12  1.9 days
    is_first_event                   1 on the user's first event                     -
    is_new_session                   1 on a new session id or after a 30-min gap     -
    log_events_in_session            log1p(events this session, this one included)   4  55 events
    log_session_seconds              log1p(seconds since the session's first event) 10  6 hours
    log_cart_items                   log1p(items in the cart, which keeps 32)        3  20 items
    log_cart_value                   log1p(sum of quantity x price over the cart)    8  3,000
    item_seen_recently               1 if among the 16 items last seen, before it    -
    item_in_cart                     1 if in the cart before the event               -
    hour_sin, hour_cos               sin, cos of 2 pi x (UTC hour of day) / 24       -  (**)
    log_events_total                 log1p(events so far)                            6  400 events
    same_category_as_previous        1 if the previous event had this category       -
    category_recent_share            share in its category of the (up to) 8 before   -
    log_session_category_events      log1p(its events this session)                  4  55 events
    session_dominant_category_share  top category's events / the session's events    -
    recent_dominant_category_share   top category's share of the last (up to) 8      -
    log_seconds_since_first_event    log1p(seconds since the user's first event)    14  14 days
    log_sessions_total               log1p(sessions so far)                          4  55 sessions
    log_sessions_per_day             log1p(sessions / (days since the first + 1))    1  (***)
    item_in_recent_views             1 if among the last 6 distinct items viewed     -
    log_session_repeat_views         log1p(views this session of a recent view)      3  20 views

    (*) Quantities are mostly 1 to 3 (0.69 to 1.39): left unscaled. (**) Already in [-1, 1];
    the pair keeps 23:59 next to 00:00. (***) One session a day gives 0.69; the added day
    keeps a new user's rate finite. "Its": the event's category. A category of 0 (none)
    matches nothing and counts in no session tally. The category features are there because
    a shopper who means to buy keeps looking within one category; one who browses drifts.
    """

    is_view: float
    is_add_to_cart: float
    is_remove_from_cart: float
    is_wishlist: float
    is_purchase: float
    log_price: float
    log_quantity: float
    log_seconds_since_previous: float
    is_first_event: float
    is_new_session: float
    log_events_in_session: float
    log_session_seconds: float
    log_cart_items: float
    log_cart_value: float
    item_seen_recently: float
    item_in_cart: float
    hour_sin: float
    hour_cos: float
    log_events_total: float
    same_category_as_previous: float
    category_recent_share: float
    log_session_category_events: float
    session_dominant_category_share: float
    recent_dominant_category_share: float
    log_seconds_since_first_event: float
    log_sessions_total: float
    log_sessions_per_day: float
    item_in_recent_views: float
    log_session_repeat_views: float


FEATURE_NAMES: Final = FeatureRow._fields
N_FEATURES: Final = len(FEATURE_NAMES)
# The one-hot columns come first, in EVENT_TYPES order: an event type's index is its column.
assert FEATURE_NAMES[: len(EVENT_TYPES)] == tuple(f"is_{name}" for name in EVENT_TYPES)


STORED: Final = "stored"  # field metadata of EncoderState: how the state's layout keeps it
U4: Final = np.dtype("<u4")  # a 32-bit id or hash
CART_DTYPE: Final = np.dtype([("item", "<u4"), ("quantity", "<u4"), ("price", "<f4")])
SESSION_CATEGORY_DTYPE: Final = np.dtype([("category", "<u4"), ("events", "<u4")])


def _stored(how: str | np.dtype) -> dict[str, Any]:
    """Field metadata: a number's struct format (I: uint32, q: int64), or the numpy dtype of
    a list's items or of a dict's entries (the key, then the value's fields)."""
    return {STORED: how}


@dataclass(slots=True)
class EncoderState:
    """What the encoder remembers about one user between events (advanced in place).

    Every field is kept in the user's stored state, as its ``STORED`` metadata says: the
    layout (``model.serving.user_state.layout``) follows these declarations, lists and dicts
    in the order declared, then the numbers in the order declared.
    """

    n_events: int = field(default=0, metadata=_stored("I"))
    prev_ts: int = field(default=0, metadata=_stored("q"))
    session: int = field(default=0, metadata=_stored("I"))  # stable_hash of the session id
    session_start: int = field(default=0, metadata=_stored("q"))
    session_events: int = field(default=0, metadata=_stored("I"))
    # item -> (quantity, unit price)
    cart: dict[int, tuple[int, float]] = field(default_factory=dict, metadata=_stored(CART_DTYPE))
    # distinct items, oldest first
    recent_items: list[int] = field(default_factory=list, metadata=_stored(U4))
    # oldest first, one per event, 0 = none
    recent_categories: list[int] = field(default_factory=list, metadata=_stored(U4))
    # category -> events this session
    session_categories: dict[int, int] = field(
        default_factory=dict, metadata=_stored(SESSION_CATEGORY_DTYPE)
    )
    first_ts: int = field(default=0, metadata=_stored("q"))
    n_sessions: int = field(default=0, metadata=_stored("I"))
    # distinct items last viewed, oldest first
    recent_views: list[int] = field(default_factory=list, metadata=_stored(U4))
    # views this session of an item in recent_views
    session_repeat_views: int = field(default=0, metadata=_stored("I"))

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
) -> tuple[float, float, float, float, float]:
    """Advance the category memory by one event; the five category features of FeatureRow.

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


def _advance_views(state: EncoderState, record: EventRecord) -> bool:
    """Remember a viewed item; whether the item was among the recent views (before it)."""
    in_recent_views = record.item in state.recent_views
    if record.event_type == VIEW:
        views = state.recent_views
        if in_recent_views:
            state.session_repeat_views += 1
        else:
            views.append(record.item)
            if len(views) > MAX_RECENT_VIEWS:
                del views[0]
    return in_recent_views


def _advance_items(state: EncoderState, record: EventRecord) -> bool:
    """Remember the item as the most recent; whether it was among the recent items before."""
    recent = state.recent_items
    seen_recently = record.item in recent
    if seen_recently:
        recent.remove(record.item)
    recent.append(record.item)
    if len(recent) > MAX_RECENT_ITEMS:
        del recent[0]
    return seen_recently


def encode_step(state: EncoderState, record: EventRecord) -> list[float]:
    """Advance ``state`` by one event and return that event's features, FeatureRow's fields
    in order (a list, which numpy converts twice as fast as a NamedTuple)."""
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
    in_recent_views = _advance_views(state, record)
    in_cart_before = record.item in state.cart
    _update_cart(state, record)
    state.n_events += 1
    state.session_events += 1
    state.prev_ts = record.ts
    seen_recently = _advance_items(state, record)
    (
        same_category_as_previous,
        category_recent_share,
        log_session_category_events,
        session_dominant_category_share,
        recent_dominant_category_share,
    ) = _category_features(state, record, new_session)
    hour = (record.ts // 1000 % 86_400) / 3600.0  # whole seconds since UTC midnight, in hours
    kind = record.event_type
    is_view = 1.0 if kind == VIEW else 0.0
    is_add_to_cart = 1.0 if kind == ADD_TO_CART else 0.0
    is_remove_from_cart = 1.0 if kind == REMOVE_FROM_CART else 0.0
    is_wishlist = 1.0 if kind == WISHLIST else 0.0
    is_purchase = 1.0 if kind == PURCHASE else 0.0
    log_price = math.log1p(record.price) / 6.0
    log_quantity = math.log1p(record.quantity)
    log_seconds_since_previous = math.log1p(gap_ms / 1000.0) / 12.0
    is_first_event = 1.0 if first else 0.0
    is_new_session = 1.0 if new_session else 0.0
    log_events_in_session = math.log1p(state.session_events) / 4.0
    log_session_seconds = math.log1p((record.ts - state.session_start) / 1000.0) / 10.0
    log_cart_items = math.log1p(len(state.cart)) / 3.0
    log_cart_value = math.log1p(state.cart_value) / 8.0
    item_seen_recently = 1.0 if seen_recently else 0.0
    item_in_cart = 1.0 if in_cart_before else 0.0
    hour_sin = math.sin(2.0 * math.pi * hour / 24.0)
    hour_cos = math.cos(2.0 * math.pi * hour / 24.0)
    log_events_total = math.log1p(state.n_events) / 6.0
    log_seconds_since_first_event = math.log1p((record.ts - state.first_ts) / 1000.0) / 14.0
    log_sessions_total = math.log1p(state.n_sessions) / 4.0
    log_sessions_per_day = math.log1p(
        state.n_sessions * DAY_MS / (record.ts - state.first_ts + DAY_MS)
    )
    item_in_recent_views = 1.0 if in_recent_views else 0.0
    log_session_repeat_views = math.log1p(state.session_repeat_views) / 3.0
    return [  # FeatureRow's fields, in order (tests/unit/test_features.py checks the names)
        is_view,
        is_add_to_cart,
        is_remove_from_cart,
        is_wishlist,
        is_purchase,
        log_price,
        log_quantity,
        log_seconds_since_previous,
        is_first_event,
        is_new_session,
        log_events_in_session,
        log_session_seconds,
        log_cart_items,
        log_cart_value,
        item_seen_recently,
        item_in_cart,
        hour_sin,
        hour_cos,
        log_events_total,
        same_category_as_previous,
        category_recent_share,
        log_session_category_events,
        session_dominant_category_share,
        recent_dominant_category_share,
        log_seconds_since_first_event,
        log_sessions_total,
        log_sessions_per_day,
        item_in_recent_views,
        log_session_repeat_views,
    ]


class FeatureSpec:
    """The encoder as one object: its memory, its features and one step.

    Everything that depends on the features reads it from a spec: the state machine, the
    stored layout (from ``state_type``'s fields) and the network's input width
    (``n_features``). A subclass adds a feature by naming it, computing it in ``step`` and,
    if it needs memory, giving an ``EncoderState`` subclass with one more stored field.
    """

    version: ClassVar[int] = ENCODER_VERSION
    names: ClassVar[tuple[str, ...]] = FEATURE_NAMES
    state_type: ClassVar[type[EncoderState]] = EncoderState

    @property
    def n_features(self) -> int:
        return len(self.names)

    def new_state(self) -> EncoderState:
        return self.state_type()

    def step(self, state: EncoderState, record: EventRecord) -> Sequence[float]:
        """Advance ``state`` by one event and return that event's features."""
        return encode_step(state, record)

    def fold(
        self, records: Iterable[EventRecord], state: EncoderState | None = None
    ) -> tuple[np.ndarray, EncoderState, list[int]]:
        """Fold a user's records (oldest first): features (T, F), final state, cart sizes."""
        state = self.new_state() if state is None else state
        rows: list[Sequence[float]] = []
        cart_sizes: list[int] = []
        for record in records:
            rows.append(self.step(state, record))
            cart_sizes.append(len(state.cart))
        features = np.asarray(rows, dtype=np.float32).reshape(len(rows), self.n_features)
        return features, state, cart_sizes

    def spec_hash(self) -> str:
        """Fingerprint of the encoder: names, version and constants. Artifacts must match it."""
        spec = {
            "version": self.version,
            "names": self.names,
            "event_types": EVENT_TYPES,
            "session_gap_ms": SESSION_GAP_MS,
            "max_cart_items": MAX_CART_ITEMS,
            "max_recent_items": MAX_RECENT_ITEMS,
            "max_recent_categories": MAX_RECENT_CATEGORIES,
            "max_session_categories": MAX_SESSION_CATEGORIES,
            "max_recent_views": MAX_RECENT_VIEWS,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


FEATURES: Final = FeatureSpec()


def feature_spec_hash() -> str:
    """The spec hash of THE encoder (``FEATURES``): artifacts record it and must match it."""
    return FEATURES.spec_hash()


def encode_records(
    records: Iterable[EventRecord], state: EncoderState | None = None
) -> tuple[np.ndarray, EncoderState, list[int]]:
    """Fold a user's records (oldest first): features (T, F), final state, cart size after each."""
    return FEATURES.fold(records, state)


def encode_events(events: Sequence[ShopEvent]) -> tuple[np.ndarray, list[int]]:
    """Features (T, F) and cart sizes for one user's events, oldest first."""
    features, _, cart_sizes = encode_records(record_from_event(e) for e in events)
    return features, cart_sizes
