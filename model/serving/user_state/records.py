"""One event as the state keeps it: the compact record and its packed form in the sequence."""

import struct
import zlib
from typing import Final, NamedTuple

import numpy as np

from schemas.events import EVENT_TYPE_INDEX, EVENT_TYPES, ShopEvent

VIEW, ADD_TO_CART, REMOVE_FROM_CART, WISHLIST, PURCHASE = range(len(EVENT_TYPES))


class EventRecord(NamedTuple):
    """The compact form of an event that the encoder reads and the sequence table stores."""

    ts: int
    event_type: int
    item: int
    session: int
    price: float
    quantity: int
    category: int  # stable_hash of the category code; 0 when the event has none


def stable_hash(text: str | None) -> int:
    """A process-independent 32-bit hash (Python's hash() is salted per process)."""
    return 0 if text is None else zlib.crc32(text.encode("utf-8"))


def record_from_event(event: ShopEvent) -> EventRecord:
    """Compact an event; the price is rounded to float32 exactly as the table stores it."""
    price = 0.0 if event.price is None else float(np.float32(event.price))
    return EventRecord(
        ts=event.ts,
        event_type=EVENT_TYPE_INDEX[event.event_type],
        item=stable_hash(event.item_id),
        session=stable_hash(event.session_id),
        price=price,
        quantity=1 if event.quantity is None else min(event.quantity, 65_535),
        category=stable_hash(event.category or None),
    )


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


def sequence_records(sequence: bytes) -> list[EventRecord]:
    """The stored sequence as encoder records."""
    return [EventRecord(*fields) for fields in SEQUENCE_RECORD.iter_unpack(sequence)]


def records_to_sequence(records: list[EventRecord]) -> bytes:
    return b"".join(SEQUENCE_RECORD.pack(*r) for r in records)
