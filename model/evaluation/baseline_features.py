"""Handcrafted per-event features for the baselines, from that event and earlier ones only.

Cart contents come from the shared encoder's state (``UserSequence.cart_items/cart_value``);
everything else is counted here from the user's time-ordered records. Category features read
``EventRecord.category`` (``stable_hash`` of the event's category, 0 = none), so the baselines
see the same category information as the CNN+LSTM's encoder; an event without a category
matches nothing and counts towards no category.
"""

from typing import Final

import numpy as np

from model.serving.user_state import ADD_TO_CART, VIEW
from model.training.data import Dataset, UserSequence
from schemas.events import EVENT_TYPES
from schemas.units import DAY_MS, HOUR_MS

NEVER_S: Final = 1e7  # "no such earlier event": far beyond any horizon, in seconds

BASELINE_FEATURE_NAMES: Final = (
    *(f"is_{t}" for t in EVENT_TYPES),
    *(f"n_{t}_1h" for t in EVENT_TYPES),
    *(f"n_{t}_24h" for t in EVENT_TYPES),
    *(f"n_{t}_all" for t in EVENT_TYPES),
    "log_s_since_previous",
    "log_s_since_cart_add",
    "cart_items",
    "log_cart_value",
    "views_of_this_item",
    "max_views_of_an_item",
    "distinct_items",
    "log_price",
    "log_mean_price",
    "log_max_price",
    "price_over_mean",
    "events_in_session",
    "hour_of_day",
    "has_category",
    "same_category_as_previous",
    "n_category_1h",
    "n_category_24h",
    "n_category_all",
    "category_share_all",
    "distinct_categories",
    "session_category_events",
    "session_dominant_category_share",
)


def _window_counts(ts: np.ndarray, onehot: np.ndarray, width_ms: int) -> np.ndarray:
    """Events of each type in (t - width, t], including the event itself. (T, types)"""
    cumulative = np.cumsum(onehot, axis=0)
    first = np.searchsorted(ts, ts - width_ms, side="right")
    before = np.where(first[:, None] > 0, cumulative[np.maximum(first - 1, 0)], 0)
    return cumulative - before


def _seconds_since(ts: np.ndarray, previous_at: np.ndarray) -> np.ndarray:
    """log1p seconds since an earlier index (-1 = none)."""
    seconds = np.where(previous_at >= 0, (ts - ts[np.maximum(previous_at, 0)]) / 1000.0, NEVER_S)
    return np.log1p(np.maximum(seconds, 0.0))


def _item_views(user: UserSequence) -> tuple[list[int], list[int], list[int]]:
    views: dict[int, int] = {}
    items: set[int] = set()
    this_item, top, distinct = [], [], []
    best = 0
    for record in user.records:
        items.add(record.item)
        if record.event_type == VIEW:
            views[record.item] = views.get(record.item, 0) + 1
            best = max(best, views[record.item])
        this_item.append(views.get(record.item, 0))
        top.append(best)
        distinct.append(len(items))
    return this_item, top, distinct


def _category_window_counts(
    ts: np.ndarray, categories: np.ndarray, width_ms: int | None
) -> np.ndarray:
    """Events of this event's category in (t - width, t] (all history when width is None), up
    to and including this event by position; 0 when the event has no category."""
    out = np.zeros(len(ts), np.float64)
    for category in np.unique(categories[categories != 0]):
        at = np.flatnonzero(categories == category)
        times = ts[at]
        first = 0 if width_ms is None else np.searchsorted(times, times - width_ms, side="right")
        out[at] = np.arange(1, len(at) + 1) - first
    return out


def _category_history(user: UserSequence) -> np.ndarray:
    """Per event: same category as the previous event, distinct categories so far, events of
    this category in the current session, and the session's dominant-category share. (T, 4)"""
    rows = []
    seen: set[int] = set()
    session: dict[int, int] = {}
    previous = 0
    for record, position in zip(user.records, user.session_position, strict=True):
        category = record.category
        if position == 1:
            session = {}
        if category:
            seen.add(category)
            session[category] = session.get(category, 0) + 1
        rows.append(
            (
                1.0 if category and category == previous else 0.0,
                len(seen),
                session.get(category, 0) if category else 0,
                max(session.values(), default=0) / max(int(position), 1),
            )
        )
        previous = category
    return np.asarray(rows, np.float64).reshape(len(rows), 4)


def user_features(user: UserSequence) -> np.ndarray:
    """(T, len(BASELINE_FEATURE_NAMES)) float32 for one user's events."""
    ts, types = user.ts, user.event_types.astype(np.int64)
    n = len(ts)
    onehot = np.zeros((n, len(EVENT_TYPES)), np.float64)
    onehot[np.arange(n), types] = 1.0
    index = np.arange(n)
    previous = index - 1
    last_cart = np.maximum.accumulate(np.where(types == ADD_TO_CART, index, -1))
    prices = np.array([r.price for r in user.records], np.float64)
    priced = prices > 0
    mean_price = np.cumsum(prices) / np.maximum(np.cumsum(priced), 1)
    this_item, top, distinct = _item_views(user)
    categories = np.array([r.category for r in user.records], np.int64)
    in_category = _category_window_counts(ts, categories, None)
    history = _category_history(user)
    columns = [
        onehot,
        _window_counts(ts, onehot, HOUR_MS),
        _window_counts(ts, onehot, DAY_MS),
        np.cumsum(onehot, axis=0),
        _seconds_since(ts, previous)[:, None],
        _seconds_since(ts, last_cart)[:, None],
        np.stack(
            [
                user.cart_items,
                np.log1p(user.cart_value),
                this_item,
                top,
                distinct,
                np.log1p(prices),
                np.log1p(mean_price),
                np.log1p(np.maximum.accumulate(prices)),
                np.where(mean_price > 0, prices / np.maximum(mean_price, 1e-9), 1.0),
                user.session_position,
                (ts // HOUR_MS) % 24,
                categories != 0,
            ],
            axis=1,
        ),
        history[:, :1],
        np.stack(
            [
                _category_window_counts(ts, categories, HOUR_MS),
                _category_window_counts(ts, categories, DAY_MS),
                in_category,
                in_category / (index + 1),
            ],
            axis=1,
        ),
        history[:, 1:],
    ]
    return np.concatenate(columns, axis=1).astype(np.float32)


def dataset_features(dataset: Dataset) -> np.ndarray:
    """Baseline features of every event, flattened in the dataset's order. (N, K)"""
    return np.concatenate([user_features(u) for u in dataset.users])
