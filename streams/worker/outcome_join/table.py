"""The pending-outcomes table: user id -> the user's pending predictions (``pending.py``
bytes), plus one watermark record per partition, with an in-memory index of due users.

The watermark of a partition (the newest event time seen in it) is stored under a reserved
key, so a restarted or rebalanced worker resumes with it and decides the same labels. User
ids never hold control characters (input contract), so the reserved keys cannot collide.
"""

import struct
from collections.abc import Iterator
from typing import Any, Final

from streams.worker.due_index import DueIndex
from streams.worker.outcome_join.pending import (
    PendingList,
    decode_pending,
    earliest_deadline_ms,
    encode_pending,
    pending_count,
)
from streams.worker.tables import PartitionedTable, pack, unpack

WATERMARK_KEY_PREFIX: Final = b"\x00watermark/"
_NEWEST: Final = struct.Struct("<q")


def watermark_key(partition: int) -> bytes:
    return WATERMARK_KEY_PREFIX + str(partition).encode()


class PendingOutcomeTable(PartitionedTable):
    """Pending predictions per user, watermarks per partition, and which users fall due."""

    def __init__(self, table: Any) -> None:
        super().__init__(table)
        # Every user with pending predictions, due no later than its earliest deadline.
        self._due = DueIndex()

    def read(self, user: str) -> PendingList:
        raw = self.get(user)
        return PendingList() if raw is None else decode_pending(raw)

    def write(self, user: str, partition: int, pending: PendingList) -> tuple[bytes, bytes | None]:
        """Store a user's list (one without predictions deletes the key: a redelivered record
        of that user then finds its horizon closed); return the changelog record."""
        key = user.encode("utf-8")
        if not pending.predictions:
            self.delete(key)
            return key, None
        key, value = self.put(user, partition, encode_pending(pending))
        self._due.add(partition, key, min(p.deadline_ms for p in pending.predictions))
        return key, value

    def newest_event_ts(self, partition: int) -> int | None:
        value = self.table.data.get(watermark_key(partition))
        return None if value is None else int(_NEWEST.unpack(unpack(value)[1])[0])

    def write_newest_event_ts(self, partition: int, newest: int) -> tuple[bytes, bytes]:
        key = watermark_key(partition)
        value = pack(partition, _NEWEST.pack(newest))
        self.table.data[key] = value
        return key, value

    def users(self) -> Iterator[tuple[bytes, int, bytes]]:
        """(key, partition, pending bytes) of every user (watermark records left out)."""
        for key, partition, raw in self.items():
            if not key.startswith(WATERMARK_KEY_PREFIX):
                yield key, partition, raw

    def pending_usage(self, partitions: set[int]) -> tuple[int, int]:
        """Pending predictions and their bytes held for ``partitions``."""
        count = size = 0
        for _, partition, raw in self.users():
            if partition in partitions:
                count += pending_count(raw)
                size += len(raw)
        return count, size

    def due(
        self, known_until: dict[int, int], generation: int, limit: int
    ) -> list[tuple[str, int, PendingList]]:
        """Up to ``limit`` users of the partitions in ``known_until`` that may hold a
        prediction whose horizon has closed, with their lists. After a rebalance (new
        ``generation``), the index is rebuilt from the table first."""
        self._due.rebuild_if_stale(
            generation,
            lambda: ((key, p, earliest_deadline_ms(raw)) for key, p, raw in self.users()),
        )
        due = self.values_of(self._due.pop_due(known_until, limit))
        return [(user, partition, decode_pending(raw)) for user, partition, raw in due]

    def reindex(self, user: str, partition: int, pending: PendingList) -> None:
        """Put an unchanged user back into the index (``due`` took it out)."""
        if pending.predictions:
            deadline = min(p.deadline_ms for p in pending.predictions)
            self._due.add(partition, user.encode("utf-8"), deadline)
