"""The compact byte codec of a user's state, as the table and its changelog keep it.

The layout is little-endian and versioned; the sequence is a packed record array, not JSON.
"""

import struct
from typing import Final

import numpy as np

from model.serving.user_state.encoder import EncoderState
from model.serving.user_state.machine import UserState
from model.serving.user_state.records import SEQUENCE_RECORD

STATE_FORMAT: Final = 4
# Format 3 (before applied offsets) is still read: a user's history survives the upgrade.
_READABLE_FORMATS: Final = (3, 4)

CART_DTYPE: Final = np.dtype([("item", "<u4"), ("quantity", "<u4"), ("price", "<f4")])
SESSION_CATEGORY_DTYPE: Final = np.dtype([("category", "<u4"), ("events", "<u4")])
APPLIED_DTYPE: Final = np.dtype([("source", "<u4"), ("offset", "<i8")])

# format, model tag, last update (wall ms), sequence length, cart size, recent size,
# recent-categories size, session-categories size, recent-views size, context rows, hidden
# size, then the encoder scalars; format 4 adds the number of applied-offset entries.
_HEADER_V3 = struct.Struct("<BIqHBBBBBHHIqIqIqII")
_HEADER = struct.Struct(_HEADER_V3.format + "B")


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
