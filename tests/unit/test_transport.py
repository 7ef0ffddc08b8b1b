"""The bundling consumer's fetch path: input fetched while the app rebalances is held back and
read again afterwards, so no input passes ahead of records Faust dropped from a stream's queue."""

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.worker.transport import BundlingConsumer, HeldBack, RecordBundle

INPUT = TP("events", 0)
CHANGELOG = TP("app-user-states-changelog", 0)


def records(tp: TP, first: int, last: int) -> list[Any]:
    return [
        SimpleNamespace(
            topic=tp.topic,
            partition=tp.partition,
            offset=o,
            timestamp=0,
            timestamp_type=0,
            serialized_value_size=1,
        )
        for o in range(first, last + 1)
    ]


class FakeThread:
    def __init__(self, fetches: list[dict[TP, list[Any]]]) -> None:
        self.fetches = fetches
        self.seeks: list[tuple[TP, int]] = []

    async def getmany(self, active_partitions: Any, timeout: float) -> dict[TP, list[Any]]:
        return self.fetches.pop(0)

    def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))

    def assignment(self) -> set[TP]:
        return {INPUT, CHANGELOG}


def consumer(fetches: list[dict[TP, list[Any]]]) -> Any:
    c: Any = object.__new__(BundlingConsumer)
    c._thread = FakeThread(fetches)
    c.app = SimpleNamespace(
        rebalancing=True, tables=SimpleNamespace(changelog_topics={CHANGELOG.topic})
    )
    c.log = SimpleNamespace(dev=lambda *args: None)
    c._read_offset = defaultdict(lambda: None)
    c._committed_offset = defaultdict(lambda: None)
    return c


def spans(fetched: Any) -> dict[TP, tuple[int, int]]:
    out = {}
    for tp, messages in fetched.items():
        (message,) = messages
        bundle = message.value
        assert isinstance(bundle, RecordBundle)
        out[tp] = (bundle.first_offset, bundle.last_offset)
    return out


def test_input_fetched_while_rebalancing_is_read_again_from_its_start() -> None:
    """The failure this prevents: Faust's recovery queued 277-788 (fetched before its seek)
    and cleared the queue when it resumed flow; 789-1300, fetched before the seek as well, was
    scored first, and the re-read 277-788 counted as redelivered for its users."""
    c = consumer(
        [
            {INPUT: records(INPUT, 277, 788), CHANGELOG: records(CHANGELOG, 5, 9)},
            {INPUT: records(INPUT, 789, 1300)},  # the rebalance is over: stale, read again
            {INPUT: records(INPUT, 277, 500)},
        ]
    )

    async def run() -> list[Any]:
        first = await c._getmany(None, 1.0)
        c.app.rebalancing = False
        c._committed_offset[INPUT] = 277  # set by Faust's seek to the committed offsets
        return [first, await c._getmany(None, 1.0), await c._getmany(None, 1.0)]

    during, after, again = asyncio.run(run())
    assert spans(during) == {CHANGELOG: (5, 9)}  # recovery still reads the changelog
    assert spans(after) == {} and c._thread.seeks == [(INPUT, 277)]
    assert spans(again) == {INPUT: (277, 500)}


def test_held_back_input_rewinds_to_the_committed_offset_when_lower() -> None:
    held = HeldBack()
    held.hold(INPUT, 900)
    held.hold(INPUT, 950)
    assert held.release({INPUT: 700}) == {INPUT: 700}
    assert not held
    held.hold(INPUT, 900)
    assert held.release({}) == {INPUT: 900}


def test_input_passes_unchanged_outside_rebalances() -> None:
    c = consumer([{INPUT: records(INPUT, 0, 9)}, {INPUT: records(INPUT, 10, 12)}])
    c.app.rebalancing = False

    async def run() -> list[Any]:
        return [await c._getmany(None, 1.0), await c._getmany(None, 1.0)]

    first, second = asyncio.run(run())
    assert spans(first) == {INPUT: (0, 9)} and spans(second) == {INPUT: (10, 12)}
    assert c._thread.seeks == [] and c._read_offset[INPUT] == 12
