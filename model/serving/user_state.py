"""Per-user state (rolling event sequence + encoder + model state) and its compact byte codec.

The stream keeps one of these per user in a changelog-backed table, as bytes. The layout is
little-endian and versioned; the sequence is a packed record array, not JSON.
"""

import struct
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np

from model.serving.features import EncoderState, EventRecord

STATE_FORMAT: Final = 4
# Format 3 (before applied offsets) is still read: a user's history survives the upgrade.
_READABLE_FORMATS: Final = (3, 4)
# Input partitions whose last applied offset a state remembers (3 topics need 3).
MAX_APPLIED_SOURCES: Final = 16

SEQUENCE_DTYPE: Final = np.dtype(
    [
        ("ts", "<i8"),
        ("event_type", "u1"),
        ("item", "<u4"),
        ("session", "<u4"),
        ("price", "<f4"),
        ("quantity", "<u2"),
        ("category", "<u4"),
    ]
)
# The same layout as SEQUENCE_DTYPE, for packing one record without numpy overhead.
SEQUENCE_RECORD: Final = struct.Struct("<qBIIfHI")
assert SEQUENCE_RECORD.size == SEQUENCE_DTYPE.itemsize
CART_DTYPE: Final = np.dtype([("item", "<u4"), ("quantity", "<u4"), ("price", "<f4")])
SESSION_CATEGORY_DTYPE: Final = np.dtype([("category", "<u4"), ("events", "<u4")])
APPLIED_DTYPE: Final = np.dtype([("source", "<u4"), ("offset", "<i8")])

# format, model tag, last update (wall ms), sequence length, cart size, recent size,
# recent-categories size, session-categories size, recent-views size, context rows, hidden
# size, then the encoder scalars; format 4 adds the number of applied-offset entries.
_HEADER_V3 = struct.Struct("<BIqHBBBBBHHIqIqIqII")
_HEADER = struct.Struct(_HEADER_V3.format + "B")


@lru_cache(maxsize=4096)
def source_id(topic: str, partition: int) -> int:
    """32-bit id of an input topic-partition, the key of a state's applied offsets."""
    return zlib.crc32(f"{topic}:{partition}".encode())


def model_tag(model_version: str) -> int:
    """32-bit tag of a model version stored in each state; a change forces a rebuild."""
    return zlib.crc32(model_version.encode("utf-8"))


@dataclass(slots=True)
class UserState:
    """Working copy of one user's state. Decode, update, encode, and assign back."""

    model_tag: int
    updated_ms: int
    encoder: EncoderState
    window: np.ndarray  # (k-1, F) float32: last inputs of the causal convolution
    h: np.ndarray  # (H,) float32
    c: np.ndarray  # (H,) float32
    sequence: bytes  # packed SEQUENCE_DTYPE records, oldest first, sorted by event time
    # source_id(topic, partition) -> offset of the last input record applied from it: a
    # redelivered record (offset <= this) is recognised and changes nothing.
    applied: dict[int, int] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Events in the rolling sequence."""
        return len(self.sequence) // SEQUENCE_RECORD.size

    @property
    def last_ts(self) -> int:
        if not self.sequence:
            return 0
        return int(
            SEQUENCE_RECORD.unpack_from(self.sequence, len(self.sequence) - SEQUENCE_RECORD.size)[0]
        )

    def sequence_array(self) -> np.ndarray:
        """The sequence as a structured array (read-only view)."""
        return np.frombuffer(self.sequence, SEQUENCE_DTYPE)

    def already_applied(self, source: int, offset: int) -> bool:
        """Whether the input record at ``offset`` of ``source`` is already in this state."""
        return offset <= self.applied.get(source, -1)

    def mark_applied(self, source: int, offset: int) -> None:
        applied = self.applied
        applied.pop(source, None)
        applied[source] = offset  # most recently used last
        if len(applied) > MAX_APPLIED_SOURCES:
            del applied[next(iter(applied))]

    def append(self, record: EventRecord, window_size: int) -> None:
        """Add a record at the end, keeping the last ``window_size`` records."""
        keep = window_size * SEQUENCE_RECORD.size
        self.sequence = (self.sequence + SEQUENCE_RECORD.pack(*record))[-keep:]


def sequence_records(sequence: bytes) -> list[EventRecord]:
    """The stored sequence as encoder records."""
    return [EventRecord(*fields) for fields in SEQUENCE_RECORD.iter_unpack(sequence)]


def records_to_sequence(records: list[EventRecord]) -> bytes:
    return b"".join(SEQUENCE_RECORD.pack(*r) for r in records)


def encode_state(state: UserState) -> bytes:
    """Serialise a state to the compact table/changelog representation."""
    enc = state.encoder
    cart = np.array(
        [(item, qty, price) for item, (qty, price) in enc.cart.items()], dtype=CART_DTYPE
    )
    recent = np.asarray(enc.recent_items, dtype="<u4")
    recent_categories = np.asarray(enc.recent_categories, dtype="<u4")
    session_categories = np.array(list(enc.session_categories.items()), SESSION_CATEGORY_DTYPE)
    recent_views = np.asarray(enc.recent_views, dtype="<u4")
    applied = np.array(list(state.applied.items()), APPLIED_DTYPE)
    header = _HEADER.pack(
        STATE_FORMAT,
        state.model_tag,
        state.updated_ms,
        state.length,
        len(cart),
        len(recent),
        len(recent_categories),
        len(session_categories),
        len(recent_views),
        state.window.shape[0],
        state.h.shape[0],
        enc.n_events,
        enc.prev_ts,
        enc.session,
        enc.session_start,
        enc.session_events,
        enc.first_ts,
        enc.n_sessions,
        enc.session_repeat_views,
        len(applied),
    )
    return b"".join(
        (
            header,
            cart.tobytes(),
            recent.tobytes(),
            recent_categories.tobytes(),
            session_categories.tobytes(),
            recent_views.tobytes(),
            applied.tobytes(),
            state.window.astype("<f4", copy=False).tobytes(),
            state.h.astype("<f4", copy=False).tobytes(),
            state.c.astype("<f4", copy=False).tobytes(),
            state.sequence,
        )
    )


def decode_state(raw: bytes, n_features: int) -> UserState:
    """Inverse of encode_state (and reader of format 3). ValueError on a foreign or truncated
    value."""
    if not raw or raw[0] not in _READABLE_FORMATS:
        raise ValueError(f"not a user state of format {_READABLE_FORMATS}")
    header = _HEADER if raw[0] == STATE_FORMAT else _HEADER_V3
    if len(raw) < header.size:
        raise ValueError("user state is shorter than its header")
    fields = header.unpack_from(raw)
    n_applied = fields[19] if header is _HEADER else 0
    (
        _,
        tag,
        updated,
        n_seq,
        n_cart,
        n_recent,
        n_recent_categories,
        n_session_categories,
        n_recent_views,
        context,
        hidden,
        n_events,
        prev_ts,
        session,
        session_start,
        session_events,
        first_ts,
        n_sessions,
        session_repeat_views,
    ) = fields[:19]
    offset = header.size
    cart = np.frombuffer(raw, CART_DTYPE, n_cart, offset)
    offset += n_cart * CART_DTYPE.itemsize
    recent = np.frombuffer(raw, "<u4", n_recent, offset)
    offset += n_recent * 4
    recent_categories = np.frombuffer(raw, "<u4", n_recent_categories, offset)
    offset += n_recent_categories * 4
    session_categories = np.frombuffer(raw, SESSION_CATEGORY_DTYPE, n_session_categories, offset)
    offset += n_session_categories * SESSION_CATEGORY_DTYPE.itemsize
    recent_views = np.frombuffer(raw, "<u4", n_recent_views, offset)
    offset += n_recent_views * 4
    applied = np.frombuffer(raw, APPLIED_DTYPE, n_applied, offset)
    offset += n_applied * APPLIED_DTYPE.itemsize
    window = np.frombuffer(raw, "<f4", context * n_features, offset).reshape(context, n_features)
    offset += context * n_features * 4
    h = np.frombuffer(raw, "<f4", hidden, offset)
    offset += hidden * 4
    c = np.frombuffer(raw, "<f4", hidden, offset)
    offset += hidden * 4
    sequence = raw[offset : offset + n_seq * SEQUENCE_RECORD.size]
    if offset + n_seq * SEQUENCE_RECORD.size != len(raw):
        raise ValueError("user state has trailing or missing bytes")
    enc = EncoderState()
    enc.n_events, enc.prev_ts, enc.session = n_events, prev_ts, session
    enc.session_start, enc.session_events = session_start, session_events
    enc.first_ts, enc.n_sessions = first_ts, n_sessions
    enc.session_repeat_views = session_repeat_views
    enc.cart = {int(i): (int(q), float(p)) for i, q, p in cart.tolist()}
    enc.recent_items = recent.tolist()
    enc.recent_categories = recent_categories.tolist()
    enc.session_categories = {int(c): int(n) for c, n in session_categories.tolist()}
    enc.recent_views = recent_views.tolist()
    applied_offsets = {int(source): int(at) for source, at in applied.tolist()}
    return UserState(tag, updated, enc, window, h, c, sequence, applied_offsets)


def state_updated_ms(raw: bytes) -> int:
    """Wall-clock time of a stored state's last update, read without decoding the rest."""
    return int(_HEADER_V3.unpack_from(raw)[2])
