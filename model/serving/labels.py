"""Training targets per event: purchase within the horizon, and cart abandonment.

An event's labels look only forward in the same user's time-ordered sequence; its features
(from ``model.serving.user_state``) look only backward, so nothing about an event's future
leaks into its inputs. Events whose horizon runs past the end of the data are masked, not negative.

The rule itself is two predicates, ``bought_within`` and ``horizon_closed``: training applies
them to whole arrays here, and the stream's outcome join (streams/worker/outcome_step.py)
applies them to one pending prediction at a time, so live labels are training's labels.
"""

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from model.serving.user_state import PURCHASE


@dataclass(frozen=True)
class UserLabels:
    """Targets for one user's events (oldest first); a label counts only where its mask is set."""

    purchase_within_horizon: np.ndarray  # (T,) float32 in {0, 1}
    purchase_mask: np.ndarray  # (T,) bool: the whole horizon lies inside the data
    cart_abandon: np.ndarray  # (T,) float32 in {0, 1}
    cart_abandon_mask: np.ndarray  # (T,) bool: purchase_mask and a non-empty cart after the event


# An int (one prediction in the stream) or an int64 array (a user's events offline).
Times = TypeVar("Times", int, np.ndarray)


def bought_within(event_ts: Times, purchase_ts: Times, horizon_ms: int) -> Times:
    """Whether a purchase at ``purchase_ts`` (-1: none) that follows an event at ``event_ts``
    makes the event positive: it falls within the horizon, not before the event."""
    return (purchase_ts >= event_ts) & (purchase_ts <= event_ts + horizon_ms)


def horizon_closed(event_ts: Times, horizon_ms: int, known_until_ms: int) -> Times:
    """Whether an event's horizon has ended by ``known_until_ms``, the time up to which every
    event is known (offline: the end of the data; in the stream: the watermark), so that no
    purchase can still make it positive."""
    return event_ts + horizon_ms <= known_until_ms


def next_purchase_ts(ts: np.ndarray, event_types: np.ndarray) -> np.ndarray:
    """For each position, the time of the first purchase at a strictly later position (or -1).

    "Later" is by position in the time-ordered sequence, so a purchase that shares a
    timestamp with an earlier event still follows it, as it would in the stream.
    """
    out = np.full(len(ts), -1, dtype=np.int64)
    upcoming = -1
    for i in range(len(ts) - 1, -1, -1):
        out[i] = upcoming
        if event_types[i] == PURCHASE:
            upcoming = int(ts[i])
    return out


def label_user(
    ts: np.ndarray,
    event_types: np.ndarray,
    cart_sizes: np.ndarray,
    *,
    horizon_ms: int,
    data_end_ms: int,
) -> UserLabels:
    """Labels for one user's events sorted by time; ``cart_sizes`` come from the shared encoder."""
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) > 1 and np.any(np.diff(ts) < 0):
        raise ValueError("events must be sorted by event time")
    following = next_purchase_ts(ts, np.asarray(event_types))
    bought = bought_within(ts, following, horizon_ms)
    observable = horizon_closed(ts, horizon_ms, data_end_ms)
    has_cart = np.asarray(cart_sizes) > 0
    return UserLabels(
        purchase_within_horizon=bought.astype(np.float32),
        purchase_mask=observable,
        cart_abandon=(~bought).astype(np.float32),
        cart_abandon_mask=observable & has_cart,
    )
