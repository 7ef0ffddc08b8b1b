"""The worker's tables: bytes values, written explicitly to the source record's partition.

Values are reassigned, never mutated: each write stores new bytes in the table and returns the
changelog record for the caller to publish. The source partition is kept as a 2-byte prefix so
that the sweepers, which run outside any stream event, know where each key's record belongs.
``UserStateTable`` holds each user's scoring state; ``PendingOutcomeTable`` (in
``streams.worker.outcome_join.table``) each user's predictions waiting for their labels.
"""

import struct
from collections.abc import Iterable, Iterator
from typing import Any

import faust
from faust.types import EventT

from model.serving.user_state import state_updated_ms
from streams.worker.transport import RecordBundle

_PARTITION = struct.Struct("<H")


def pack(partition: int, state: bytes) -> bytes:
    return _PARTITION.pack(partition) + state


def unpack(value: bytes) -> tuple[int, bytes]:
    return _PARTITION.unpack_from(value)[0], value[_PARTITION.size :]


class BundledTable(faust.Table[bytes, bytes]):
    """A Faust table whose changelog events may carry record bundles (streams.worker.transport).

    Recovery and standby replicas apply each bundle's records in offset order; a record
    without a value (tombstone) deletes its key.
    """

    def apply_changelog_batch(self, batch: Iterable[EventT[Any]]) -> None:
        data = self.data
        for event in batch:
            value = event.value
            records = value if isinstance(value, RecordBundle) else (event.message,)
            for record in records:
                if record.value is None:
                    data.pop(record.key, None)
                else:
                    data[record.key] = record.value


class PartitionedTable:
    """A faust Table of bytes key -> (partition, bytes) packed into one value."""

    def __init__(self, table: Any) -> None:
        self.table = table

    @property
    def changelog_topic(self) -> str:
        return str(self.table.changelog_topic.get_topic_name())

    def get(self, user: str) -> bytes | None:
        value = self.table.data.get(user.encode("utf-8"))
        return None if value is None else unpack(value)[1]

    def put(self, user: str, partition: int, state: bytes) -> tuple[bytes, bytes]:
        """Store a new value; return the (key, value) changelog record for ``partition``.

        Equivalent to ``table[key] = value`` inside an event, but with an explicit partition,
        since one micro-batch holds events of many partitions.
        """
        key = user.encode("utf-8")
        value = pack(partition, state)
        self.table.data[key] = value
        return key, value

    def delete(self, key: bytes) -> None:
        self.table.data.pop(key, None)

    def items(self) -> Iterator[tuple[bytes, int, bytes]]:
        for key, value in list(self.table.data.items()):
            partition, state = unpack(value)
            yield key, partition, state

    def __len__(self) -> int:
        return len(self.table.data)

    def values_of(self, keys: Iterable[tuple[int, bytes]]) -> list[tuple[str, int, bytes]]:
        """(user, partition, bytes) of the (partition, key) pairs still stored there."""
        found = []
        for partition, key in keys:
            value = self.table.data.get(key)
            if value is None:
                continue
            stored_partition, raw = unpack(value)
            if stored_partition == partition:
                found.append((key.decode("utf-8"), partition, raw))
        return found

    def usage(self, partitions: set[int]) -> tuple[int, int]:
        """Keys and value bytes held for ``partitions`` (the actively owned ones)."""
        users = size = 0
        read_partition = _PARTITION.unpack_from
        for value in self.table.data.values():
            if read_partition(value)[0] in partitions:
                users += 1
                size += len(value) - _PARTITION.size
        return users, size


class UserStateTable(PartitionedTable):
    """User id (bytes) -> packed scoring state (bytes)."""

    def idle_keys(self, now_ms: int, ttl_ms: int, partitions: set[int]) -> list[tuple[bytes, int]]:
        """Keys of actively owned partitions whose last update is older than the TTL."""
        return [
            (key, partition)
            for key, partition, state in self.items()
            if partition in partitions and now_ms - state_updated_ms(state) > ttl_ms
        ]
