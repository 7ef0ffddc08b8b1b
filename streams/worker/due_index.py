"""Which keys of a table fall due by event time: a heap per partition of (due time, key).

Timers that act when a partition's watermark passes a key's due time (the outcome join's
sweep, the actions' inactivity triggers) ask it for the keys due instead of scanning the
table. A key may sit in the heap with an earlier time than its value now needs (it is then
read for nothing and put back); never with a later one. The index lives in memory: after a
rebalance (a new consumer generation) it is rebuilt from the table.
"""

import heapq
from collections.abc import Callable, Iterable


class DueIndex:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[int, bytes]]] = {}
        self._indexed: dict[bytes, int] = {}
        self.generation: int | None = None

    def add(self, partition: int, key: bytes, due_ms: int) -> None:
        """``key`` needs attention at ``due_ms`` (kept if an earlier time is indexed already)."""
        indexed = self._indexed.get(key)
        if indexed is None or due_ms < indexed:
            self._indexed[key] = due_ms
            heapq.heappush(self._heaps.setdefault(partition, []), (due_ms, key))

    def pop_due(self, known_until: dict[int, int], limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` (partition, key) whose due time the partition's watermark reached;
        they leave the index (``add`` them back if they still need attention later)."""
        found: list[tuple[int, bytes]] = []
        for partition, until in known_until.items():
            heap = self._heaps.get(partition)
            while heap and heap[0][0] <= until and len(found) < limit:
                _, key = heapq.heappop(heap)
                self._indexed.pop(key, None)
                found.append((partition, key))
        return found

    def rebuild_if_stale(
        self,
        generation: int,
        entries: Callable[[], Iterable[tuple[bytes, int, int | None]]],
    ) -> None:
        """Rebuild from ``entries()`` = (key, partition, due time or None) after a rebalance."""
        if generation == self.generation:
            return
        self._heaps, self._indexed = {}, {}
        for key, partition, due_ms in entries():
            if due_ms is not None:
                self.add(partition, key, due_ms)
        self.generation = generation
