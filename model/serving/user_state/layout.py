"""The compact byte codec of a user's state, as the table and its changelog keep it.

The layout is little-endian and versioned; the sequence is a packed record array, not JSON.
A state is a header, then a body:

- header: ``_HEAD`` (format, model tag, last update, sequence length), the length of each
  list or dict the encoder stores (B each), ``_SHAPE`` (context rows, hidden size), each
  number the encoder stores, and, from format 4, the number of applied offsets (B);
- body: each list or dict the encoder stores (rows of its dtype), the applied offsets
  (``APPLIED_DTYPE``), the convolution context (rows x features, float32), h and c (hidden
  size float32 each), the sequence (``SEQUENCE_DTYPE`` records, oldest first).

What the encoder stores, in which order and as which type, is what ``EncoderState`` declares
(``STORED`` field metadata), so a stored field added there is written and read without an
edit here. It does change the layout, though: a state written before the change must stay
readable, so such a change also gives ``STATE_FORMAT`` a new number and keeps the current
one in ``_OLDER_FORMATS`` with the fields it stored. A field a format lacks is left at its
default, and the state is rebuilt from its sequence (its model tag is cleared).
"""

import operator
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final, NamedTuple

import numpy as np

from model.serving.user_state.encoder import STORED, EncoderState
from model.serving.user_state.records import SEQUENCE_RECORD
from model.serving.user_state.state import UserState

STATE_FORMAT: Final = 4
APPLIED_DTYPE: Final = np.dtype([("source", "<u4"), ("offset", "<i8")])

_HEAD: Final = (
    ("format", "B"),
    ("model_tag", "I"),
    ("updated_ms", "q"),  # wall-clock time of the last update
    ("sequence_length", "H"),
)
_SHAPE: Final = (("context_rows", "H"), ("hidden_size", "H"))
# The head of every format up to the last update: what state_updated_ms reads.
_UPDATED_MS: Final = struct.Struct("<" + "".join(code for _, code in _HEAD[:3]))


@dataclass(frozen=True)
class _Format:
    """What a format stores besides the network state and the sequence."""

    encoder_fields: tuple[str, ...] | None  # None: every field the encoder state declares
    applied: bool  # the offsets of the last input records applied (from format 4)


# Formats still read, so that a user's history survives an upgrade. Format 3 came before
# applied offsets. The encoder fields of an older format are frozen here by name (the layout
# of a written format never changes); their types are the ones EncoderState declares, so a
# stored field keeps its type for good.
_OLDER_FORMATS: Final = {
    3: _Format(
        encoder_fields=(
            "n_events",
            "prev_ts",
            "session",
            "session_start",
            "session_events",
            "cart",
            "recent_items",
            "recent_categories",
            "session_categories",
            "first_ts",
            "n_sessions",
            "recent_views",
            "session_repeat_views",
        ),
        applied=False,
    ),
}
_FORMATS: Final = {**_OLDER_FORMATS, STATE_FORMAT: _Format(encoder_fields=None, applied=True)}


class _Stored(NamedTuple):
    """A list or dict of the encoder state, as a format stores it: an array of ``dtype``."""

    name: str
    dtype: np.dtype  # of an item, or of an entry: the key, then the value or its fields
    write: Callable[[Any], bytes]
    read: Callable[[bytes, int, int], Any]  # (raw, rows, offset) -> the list or dict


class _Layout:
    """One format's header and encoder part, for one encoder state type.

    The header holds, in order: ``_HEAD``, the length of each stored list or dict, ``_SHAPE``,
    each stored number, and the number of applied offsets when the format has them.
    """

    def __init__(self, state_type: type[EncoderState], form: _Format) -> None:
        stored = {f.name: f.metadata[STORED] for f in fields(state_type) if STORED in f.metadata}
        names = tuple(stored) if form.encoder_fields is None else form.encoder_fields
        self.collections = tuple(_stored(n, stored[n]) for n in names if _is_rows(stored[n]))
        self.number_names = tuple(n for n in names if not _is_rows(stored[n]))
        self.get_collections = _picker(operator.attrgetter, tuple(c.name for c in self.collections))
        self.get_numbers = _picker(operator.attrgetter, self.number_names)
        self.writers = tuple(c.write for c in self.collections)
        self.readers = tuple(c.read for c in self.collections)
        self.itemsizes = tuple(c.dtype.itemsize for c in self.collections)
        self.missing = frozenset(stored) - frozenset(names)
        # Decoding gathers (*numbers, *collections) and builds the state in one call, with
        # init_args picking its __init__ arguments from them; or by name, when some miss.
        self.init_names = (*self.number_names, *(c.name for c in self.collections))
        self.init_args = None if self.missing else _init_args(state_type, self.init_names)
        self.applied = form.applied
        header = (
            *_HEAD,
            *((f"{c.name}_length", "B") for c in self.collections),
            *_SHAPE,
            *((n, stored[n]) for n in self.number_names),
            *((("applied_length", "B"),) if form.applied else ()),
        )
        assert len({name for name, _ in header}) == len(header), "a field shadows another"
        self.header = struct.Struct("<" + "".join(code for _, code in header))
        # Where each part of the header is, in the tuple it unpacks to.
        start = len(_HEAD)
        self.lengths = slice(start, start + len(self.collections))
        self.shape = slice(self.lengths.stop, self.lengths.stop + len(_SHAPE))
        self.numbers = slice(self.shape.stop, self.shape.stop + len(self.number_names))


def _init_args(
    state_type: type[EncoderState], names: tuple[str, ...]
) -> Callable[[list[Any]], tuple[Any, ...]]:
    params = [f for f in fields(state_type) if f.init]
    if sorted(f.name for f in params) != sorted(names) or any(f.kw_only for f in params):
        raise TypeError(f"{state_type.__name__}'s __init__ must take its stored fields only")
    return _picker(operator.itemgetter, tuple(names.index(f.name) for f in params))


def _is_rows(how: Any) -> bool:
    return not isinstance(how, str)


def _stored(name: str, how: Any) -> _Stored:
    """How a list (of ``how`` items) or a dict (of ``how`` entries: the key, then the value
    or the value's fields) is written and read. An empty one is no bytes, and no numpy."""
    dtype = np.dtype(how)
    n_fields = 0 if dtype.names is None else len(dtype.names)  # 0: a list

    def write(value: Any) -> bytes:
        if not value:
            return b""
        if n_fields == 0:
            return np.asarray(value, dtype).tobytes()
        if n_fields == 2:
            return np.array(list(value.items()), dtype).tobytes()
        if n_fields == 3:  # the cart's shape, unpacked for speed
            return np.array([(k, a, b) for k, (a, b) in value.items()], dtype).tobytes()
        return np.array([(k, *v) for k, v in value.items()], dtype).tobytes()

    def read(raw: bytes, count: int, offset: int) -> Any:
        rows = np.frombuffer(raw, dtype, count, offset).tolist() if count else []
        if n_fields == 0:
            return rows
        if n_fields == 2:
            return dict(rows)
        if n_fields == 3:
            return {k: (a, b) for k, a, b in rows}
        return {row[0]: row[1:] for row in rows}

    return _Stored(name, dtype, write, read)


def _picker(
    pick: Callable[..., Callable[[Any], Any]], keys: tuple[Any, ...]
) -> Callable[[Any], tuple[Any, ...]]:
    """``pick(*keys)`` (an attrgetter or itemgetter: one C call), always giving a tuple."""
    if len(keys) < 2:
        return lambda obj: tuple(pick(key)(obj) for key in keys)
    return pick(*keys)


_LAYOUTS: Final[dict[tuple[type[EncoderState], int], _Layout]] = {}


def _layout(state_type: type[EncoderState], state_format: int) -> _Layout:
    """The layout of ``state_format`` for encoder states of ``state_type`` (built once)."""
    layout = _LAYOUTS.get((state_type, state_format))
    if layout is None:
        layout = _LAYOUTS[state_type, state_format] = _Layout(state_type, _FORMATS[state_format])
    return layout


def encode_state(state: UserState) -> bytes:
    """Serialise a state to the compact table/changelog representation."""
    enc = state.encoder
    layout = _layout(type(enc), STATE_FORMAT)
    collections = layout.get_collections(enc)
    applied = np.array(list(state.applied.items()), APPLIED_DTYPE)
    header = layout.header.pack(
        STATE_FORMAT,
        state.model_tag,
        state.updated_ms,
        state.length,
        *map(len, collections),  # a dict has one row per entry, a list one per item
        state.window.shape[0],
        state.h.shape[0],
        *layout.get_numbers(enc),
        len(applied),
    )
    return b"".join(
        (
            header,
            *map(operator.call, layout.writers, collections),
            applied.tobytes(),
            state.window.astype("<f4", copy=False).tobytes(),
            state.h.astype("<f4", copy=False).tobytes(),
            state.c.astype("<f4", copy=False).tobytes(),
            state.sequence,
        )
    )


def decode_state(
    raw: bytes, n_features: int, state_type: type[EncoderState] = EncoderState
) -> UserState:
    """Inverse of encode_state (and reader of the older formats), for encoder states of
    ``state_type``. ValueError on a foreign or truncated value."""
    if not raw or raw[0] not in _FORMATS:
        raise ValueError(f"not a user state of format {tuple(_FORMATS)}")
    layout = _layout(state_type, raw[0])
    if len(raw) < layout.header.size:
        raise ValueError("user state is shorter than its header")
    header = layout.header.unpack_from(raw)
    _, tag, updated_ms, sequence_length = header[: len(_HEAD)]
    context, hidden = header[layout.shape]
    offset = layout.header.size
    values = list(header[layout.numbers])
    for read, itemsize, count in zip(
        layout.readers, layout.itemsizes, header[layout.lengths], strict=False
    ):  # one length per reader by construction (strict=True would cost ~0.1 us a loop)
        values.append(read(raw, count, offset))
        offset += count * itemsize
    if layout.init_args is None:
        enc = state_type(**dict(zip(layout.init_names, values, strict=True)))
    else:
        enc = state_type(*layout.init_args(values))
    applied = np.frombuffer(raw, APPLIED_DTYPE, header[-1] if layout.applied else 0, offset)
    offset += applied.nbytes
    window = np.frombuffer(raw, "<f4", context * n_features, offset).reshape(context, n_features)
    offset += window.nbytes
    h = np.frombuffer(raw, "<f4", hidden, offset)
    offset += h.nbytes
    c = np.frombuffer(raw, "<f4", hidden, offset)
    offset += c.nbytes
    end = offset + sequence_length * SEQUENCE_RECORD.size
    if end != len(raw):
        raise ValueError("user state has trailing or missing bytes")
    applied_offsets = {int(source): int(at) for source, at in applied.tolist()}
    tag = 0 if layout.missing else tag  # 0: rebuild the encoder's memory from the sequence
    return UserState(tag, updated_ms, enc, window, h, c, raw[offset:end], applied_offsets)


def state_updated_ms(raw: bytes) -> int:
    """Wall-clock time of a stored state's last update, read without decoding the rest."""
    return int(_UPDATED_MS.unpack_from(raw)[-1])
