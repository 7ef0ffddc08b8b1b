"""A user's pending predictions (propensities, and marketing actions, whose outcome is not
known yet) as compact bytes.

Layout, little-endian, no JSON:

- header ``<BBBHq``: format, number of (model version, horizon) pairs, number of action names,
  number of predictions, and the offset of the last propensity record applied to the list (a
  redelivered record is recognised by it and changes nothing);
- each (model version, horizon): the name's length (B), the UTF-8 name, the horizon in ms (q);
- each action name: its length (B), the UTF-8 name;
- the predictions, oldest first, as ``ENTRY_DTYPE`` records: event time, the two scores
  (float64, exactly as published; NaN = no cart-abandonment score), the event type's index,
  the index of the (model version, horizon), the action (0: a propensity; k: the k-th action
  name), flags (1: resolved already, 2: a control-group action), the length of the event id
  (for an action: its action id);
- the event ids' UTF-8 bytes, one after the other.

A prediction costs ``ENTRY_DTYPE.itemsize`` bytes plus its event id (``propensity bench``
prints the measured bytes per pending prediction).
"""

import math
import struct
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from schemas.events import EVENT_TYPE_INDEX, EVENT_TYPES

PENDING_FORMAT: Final = 1
ENTRY_DTYPE: Final = np.dtype(
    [
        ("event_ts", "<i8"),
        ("purchase", "<f8"),
        ("cart_abandon", "<f8"),
        ("event_type", "u1"),
        ("version", "u1"),
        ("action", "u1"),
        ("flags", "u1"),
        ("id_length", "u1"),
    ]
)
_HEADER: Final = struct.Struct("<BBBHq")
_RESOLVED: Final = 1
_CONTROL: Final = 2
_HORIZON: Final = struct.Struct("<q")
MAX_VERSIONS: Final = 255
NO_EVENT_TYPE: Final = 255  # an action's entry: no event type
MAX_ID_BYTES: Final = 255


class PendingFormatError(ValueError):
    """Stored bytes that are not a pending-prediction list of a known format."""


@dataclass(frozen=True, slots=True)
class PendingPrediction:
    """A published propensity within its horizon: waiting for its label, or resolved positive
    and kept until the horizon ends, so that a republished copy is recognised by its id.

    A marketing action waits the same way for whether the user buys within the uplift
    horizon after it was decided (``action`` set; ``event_id`` is the action id, ``event_ts``
    the decision time, ``horizon_ms`` the uplift horizon).
    """

    event_id: str
    event_type: str
    event_ts: int
    purchase: float
    cart_abandon: float | None
    model_version: str
    horizon_ms: int
    resolved: bool = False
    action: str | None = None  # the action's name; None for a propensity
    control: bool = False  # an action decided for a control-group user (recorded, not sent)

    @property
    def deadline_ms(self) -> int:
        """The end of its horizon: a purchase after this no longer makes it positive."""
        return self.event_ts + self.horizon_ms


@dataclass(slots=True)
class PendingList:
    """A user's pending predictions (oldest first) and the last record applied to them."""

    applied_offset: int = -1
    predictions: list[PendingPrediction] = field(default_factory=list)


def encode_pending(pending: PendingList) -> bytes:
    """The bytes of a user's pending predictions."""
    predictions = pending.predictions
    versions: dict[tuple[str, int], int] = {}
    for p in predictions:
        versions.setdefault((p.model_version, p.horizon_ms), len(versions))
    actions: dict[str, int] = {}
    for p in predictions:
        if p.action is not None:
            actions.setdefault(p.action, len(actions) + 1)
    if len(versions) > MAX_VERSIONS or len(actions) > MAX_VERSIONS:
        raise ValueError(f"more than {MAX_VERSIONS} model versions or actions for one user")
    entries = np.zeros(len(predictions), ENTRY_DTYPE)
    ids = [p.event_id.encode("utf-8") for p in predictions]
    for i, (p, raw_id) in enumerate(zip(predictions, ids, strict=True)):
        if len(raw_id) > MAX_ID_BYTES:
            raise ValueError(f"event id longer than {MAX_ID_BYTES} bytes")
        cart = math.nan if p.cart_abandon is None else p.cart_abandon
        entries[i] = (
            p.event_ts,
            p.purchase,
            cart,
            EVENT_TYPE_INDEX.get(p.event_type, NO_EVENT_TYPE),
            versions[(p.model_version, p.horizon_ms)],
            0 if p.action is None else actions[p.action],
            (_RESOLVED if p.resolved else 0) | (_CONTROL if p.control else 0),
            len(raw_id),
        )
    header = (PENDING_FORMAT, len(versions), len(actions), len(predictions))
    parts = [_HEADER.pack(*header, pending.applied_offset)]
    for name, horizon_ms in versions:
        raw = name.encode("utf-8")[:255]
        parts += [bytes([len(raw)]), raw, _HORIZON.pack(horizon_ms)]
    for name in actions:
        raw = name.encode("utf-8")[:255]
        parts += [bytes([len(raw)]), raw]
    parts += [entries.tobytes(), *ids]
    return b"".join(parts)


def decode_pending(raw: bytes) -> PendingList:
    """The list ``encode_pending`` stored; PendingFormatError for anything else."""
    try:
        form, n_versions, n_actions, n_entries, applied_offset = _HEADER.unpack_from(raw)
        if form != PENDING_FORMAT:
            raise PendingFormatError(f"pending-prediction format {form} is not {PENDING_FORMAT}")
        at = _HEADER.size
        versions: list[tuple[str, int]] = []
        for _ in range(n_versions):
            length = raw[at]
            name = raw[at + 1 : at + 1 + length].decode("utf-8")
            at += 1 + length
            versions.append((name, _HORIZON.unpack_from(raw, at)[0]))
            at += _HORIZON.size
        actions: list[str | None] = [None]
        for _ in range(n_actions):
            length = raw[at]
            actions.append(raw[at + 1 : at + 1 + length].decode("utf-8"))
            at += 1 + length
        entries = np.frombuffer(raw, ENTRY_DTYPE, count=n_entries, offset=at)
        at += entries.nbytes
        out = []
        for row in entries.tolist():
            event_ts, purchase, cart, type_index, version, action, flags, id_length = row
            event_id = raw[at : at + id_length].decode("utf-8")
            at += id_length
            name, horizon_ms = versions[version]
            out.append(
                PendingPrediction(
                    event_id,
                    "" if type_index == NO_EVENT_TYPE else EVENT_TYPES[type_index],
                    event_ts,
                    purchase,
                    None if math.isnan(cart) else cart,
                    name,
                    horizon_ms,
                    bool(flags & _RESOLVED),
                    actions[action],
                    bool(flags & _CONTROL),
                )
            )
    except PendingFormatError:
        raise
    except (struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise PendingFormatError(f"unreadable pending predictions: {exc}") from None
    if at != len(raw):
        raise PendingFormatError(f"{len(raw) - at} bytes after the pending predictions")
    return PendingList(applied_offset, out)


def earliest_deadline_ms(raw: bytes) -> int:
    """The smallest deadline of a stored list without decoding it all (sweep's quick check)."""
    _, n_versions, n_actions, n_entries, _ = _HEADER.unpack_from(raw)
    at = _HEADER.size
    horizons = []
    for _ in range(n_versions):
        at += 1 + raw[at]
        horizons.append(_HORIZON.unpack_from(raw, at)[0])
        at += _HORIZON.size
    for _ in range(n_actions):
        at += 1 + raw[at]
    entries = np.frombuffer(raw, ENTRY_DTYPE, count=n_entries, offset=at)
    if not n_entries:
        return 2**63 - 1
    deadlines = entries["event_ts"] + np.asarray(horizons, np.int64)[entries["version"]]
    return int(deadlines.min())


def pending_count(raw: bytes) -> int:
    """The number of predictions in a stored list (header only)."""
    return int(_HEADER.unpack_from(raw)[3])
