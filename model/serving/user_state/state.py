"""One user's state as the stream keeps it: rolling event sequence, encoder and network state.

The stream keeps one of these per user in a changelog-backed table, as bytes (see
``layout``).
"""

import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np

from model.serving.user_state.encoder import EncoderState
from model.serving.user_state.records import SEQUENCE_DTYPE, SEQUENCE_RECORD, EventRecord

# Input partitions whose last applied offset a state remembers (3 topics need 3).
MAX_APPLIED_SOURCES: Final = 16


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
