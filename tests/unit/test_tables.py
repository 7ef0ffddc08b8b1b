"""The state table wrapper: partition prefix, replacement writes and idle-user selection."""

from typing import Any

from model.serving.user_state import UserState, encode_state
from streams.worker.tables import UserStateTable, pack, unpack


class FakeFaustTable:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}


def state_bytes(updated_ms: int) -> bytes:
    import numpy as np

    from model.serving.user_state import EncoderState

    state = UserState(
        1,
        updated_ms,
        EncoderState(),
        np.zeros((2, 19), np.float32),
        np.zeros(8, np.float32),
        np.zeros(8, np.float32),
        b"",
    )
    return encode_state(state)


def test_pack_roundtrip() -> None:
    assert unpack(pack(7, b"abc")) == (7, b"abc")


def test_put_replaces_and_returns_the_changelog_record() -> None:
    faust_table: Any = FakeFaustTable()
    table = UserStateTable(faust_table)
    first = state_bytes(1)
    key, value = table.put("u1", 3, first)
    assert key == b"u1" and unpack(value) == (3, first)
    before = faust_table.data[b"u1"]
    table.put("u1", 3, state_bytes(2))
    assert faust_table.data[b"u1"] is not before  # a new value, not a mutated one
    assert table.get("u1") == state_bytes(2)
    assert table.get("nobody") is None


def test_idle_keys_respects_ttl_and_owned_partitions() -> None:
    table = UserStateTable(FakeFaustTable())
    table.put("old-owned", 1, state_bytes(1_000))
    table.put("old-not-owned", 2, state_bytes(1_000))
    table.put("fresh", 1, state_bytes(9_500))
    idle = table.idle_keys(now_ms=10_000, ttl_ms=5_000, partitions={1})
    assert idle == [(b"old-owned", 1)]
    table.delete(b"old-owned")
    assert len(table) == 2


def test_usage_counts_only_the_given_partitions() -> None:
    table = UserStateTable(FakeFaustTable())
    table.put("active-a", 0, state_bytes(1))
    table.put("active-b", 2, state_bytes(2))
    table.put("standby", 1, state_bytes(3))
    users, size = table.usage({0, 2})
    assert users == 2
    assert size == len(state_bytes(1)) + len(state_bytes(2))
    assert table.usage(set()) == (0, 0)
