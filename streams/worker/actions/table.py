"""The action-state table: user id -> the user's action state (``state_codec`` bytes), with
an index of when each user next needs the watermark's attention (inactivity triggers, held
decisions, expiring cooldowns)."""

from typing import Any

from streams.worker.actions.decide import next_due_ms
from streams.worker.actions.rules import Policy
from streams.worker.actions.state import ActionState
from streams.worker.actions.state_codec import (
    decode_action_state,
    encode_action_state,
    holds_trigger,
)
from streams.worker.due_index import DueIndex
from streams.worker.tables import PartitionedTable


class ActionStateTable(PartitionedTable):
    def __init__(self, table: Any, policy: Policy) -> None:
        super().__init__(table)
        self.policy = policy
        self._due = DueIndex()

    def read(self, user: str) -> ActionState:
        raw = self.get(user)
        return ActionState(user) if raw is None else decode_action_state(raw)

    def write(self, user: str, partition: int, state: ActionState) -> tuple[bytes, bytes | None]:
        """Store a user's state (an empty one deletes the key); return the changelog record."""
        key = user.encode("utf-8")
        if state.empty:
            self.delete(key)
            return key, None
        key, value = self.put(user, partition, encode_action_state(state))
        due = next_due_ms(state, self.policy)
        if due is not None:
            self._due.add(partition, key, due)
        return key, value

    def due(
        self, known_until: dict[int, int], generation: int, limit: int
    ) -> list[tuple[str, int, ActionState]]:
        """Up to ``limit`` users whose next due time the watermark of their partition reached."""
        self._due.rebuild_if_stale(generation, self._due_times)
        due = self.values_of(self._due.pop_due(known_until, limit))
        return [(user, partition, decode_action_state(raw)) for user, partition, raw in due]

    def reindex(self, user: str, partition: int, state: ActionState) -> None:
        due = next_due_ms(state, self.policy)
        if due is not None:
            self._due.add(partition, user.encode("utf-8"), due)

    def pending_triggers(self, partitions: set[int]) -> int:
        """Users with an inactivity trigger or a held decision."""
        return sum(
            1
            for _, partition, raw in self.items()
            if partition in partitions and holds_trigger(raw)
        )

    def _due_times(self) -> list[tuple[bytes, int, int | None]]:
        return [
            (key, partition, next_due_ms(decode_action_state(raw), self.policy))
            for key, partition, raw in self.items()
        ]
