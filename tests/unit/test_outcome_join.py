"""The outcome join's step, codec and table: labels equal training's, whatever the batching,
the sweeps, a restart or a redelivery; bad propensities are skipped with a reason."""

import itertools
import math
import random
from dataclasses import replace
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.serving.labels import label_user
from schemas.events import EVENT_TYPES
from schemas.outputs import encode, propensity_event
from streams.worker.outcome_join.pending import (
    ENTRY_DTYPE,
    PendingFormatError,
    PendingList,
    PendingPrediction,
    decode_pending,
    earliest_deadline_ms,
    encode_pending,
    pending_count,
)
from streams.worker.outcome_join.step import (
    DUPLICATE,
    MALFORMED,
    NO_HORIZON,
    REDELIVERED,
    TOO_LATE,
    UNKNOWN_MODEL,
    JoinConfig,
    Outcome,
    Watermarks,
    join_batch,
    sweep,
)
from streams.worker.outcome_join.table import PendingOutcomeTable
from streams.worker.scoring_step import InputRecord

HORIZON = 1_000
MODEL = "m1"
CONFIG = JoinConfig(allowed_lateness_ms=0, max_pending_per_user=10_000, model_versions=None)


def propensity(
    user: str,
    event_id: str,
    event_type: str,
    ts: int,
    cart_items: int = 0,
    purchase: float = 0.25,
    **overrides: Any,
) -> dict[str, Any]:
    message = propensity_event(
        user_id=user,
        purchase=purchase,
        cart_abandon=0.5 if cart_items else None,
        cart_items=cart_items,
        cart_value=12.5 * cart_items,
        model_version=MODEL,
        horizon_ms=HORIZON,
        event_id=event_id,
        event_type=event_type,
        event_ts=ts,
        input_ts=None,
        scored_at=0,
    )
    message.update(overrides)
    return message


_offsets = itertools.count()


def record(message: Any, offset: int | None = None, partition: int = 0) -> InputRecord:
    """A propensity record (offsets count up unless given)."""
    offset = next(_offsets) if offset is None else offset
    value = message if isinstance(message, bytes) else encode(message)
    return InputRecord("propensities", partition, offset, b"k", value, None, 0.0)


class Store:
    """The table as bytes, like the changelog keeps it: every read decodes."""

    def __init__(self) -> None:
        self.lists: dict[str, bytes] = {}
        self.newest: dict[int, int] = {}

    def read(self, user: str) -> PendingList:
        raw = self.lists.get(user)
        return PendingList() if raw is None else decode_pending(raw)

    def apply(self, result: Any, marks: Watermarks) -> None:
        for user, entry in result.pending.items():
            if entry.predictions:
                self.lists[user] = encode_pending(entry.pending)
            else:
                self.lists.pop(user, None)
        self.newest.update(marks.newest)

    def marks(self, lateness: int = 0) -> Watermarks:
        return Watermarks(lateness, self.newest)

    def sweep(self) -> list[Outcome]:
        marks = self.marks()
        users = [(u, 0, decode_pending(raw)) for u, raw in self.lists.items()]
        result = sweep(users, marks)
        self.apply(result, marks)
        return result.outcomes


def run(records: list[InputRecord], store: Store, cuts: list[int], sweeps: set[int]) -> list[Any]:
    outcomes: list[Outcome] = []
    bounds = [0, *sorted(set(cuts)), len(records)]
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        marks = store.marks()
        result = join_batch(records[start:end], store.read, marks, CONFIG)
        store.apply(result, marks)
        outcomes += result.outcomes
        if i in sweeps:
            outcomes += store.sweep()
    return outcomes


events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 400),  # gap to the previous event (ms)
        st.sampled_from(EVENT_TYPES),
        st.integers(0, 3),  # cart items after the event
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(events=events_strategy, data=st.data())
def test_labels_equal_training_labels_for_every_batching_and_sweep(events: Any, data: Any) -> None:
    ts = 1_000_000
    messages = []
    for i, (user, gap, event_type, cart) in enumerate(events):
        ts += gap
        messages.append(propensity(user, f"e{i}", event_type, ts, cart_items=cart))
    records = [record(m, i) for i, m in enumerate(messages)]
    cuts = data.draw(st.lists(st.integers(0, len(records)), max_size=5))
    sweeps = set(data.draw(st.lists(st.integers(0, 6), max_size=4)))
    store = Store()
    outcomes = run(records, store, cuts, sweeps)
    outcomes += store.sweep()
    known_until = store.marks().known_until(0)

    by_id = {}
    for o in outcomes:
        assert o.prediction.event_id not in by_id, "one outcome per propensity"
        by_id[o.prediction.event_id] = o
    for user in {m["user_id"] for m in messages}:
        mine = [m for m in messages if m["user_id"] == user]
        labels = label_user(
            np.array([m["event_ts"] for m in mine]),
            np.array([EVENT_TYPES.index(m["event_type"]) for m in mine]),
            np.array([m["cart_items"] for m in mine]),
            horizon_ms=HORIZON,
            data_end_ms=known_until,
        )
        for i, m in enumerate(mine):
            got = by_id.get(m["event_id"])
            expected = int(labels.purchase_within_horizon[i])
            if labels.purchase_mask[i]:
                assert got is not None, f"{m['event_id']} closed but unresolved"
            if got is None:
                assert not labels.purchase_mask[i]
                continue
            assert got.purchase_label == expected, m["event_id"]
            if not expected:
                assert labels.purchase_mask[i], "a negative only once the horizon closed"
            cart = got.cart_abandon_label
            assert cart == (None if m["cart_items"] == 0 else 1 - expected)
            assert bool(labels.cart_abandon_mask[i]) == (
                labels.purchase_mask[i] and cart is not None
            )
    # what is still pending is exactly what has no outcome
    held = [p for raw in store.lists.values() for p in decode_pending(raw).predictions]
    unresolved = {m["event_id"] for m in messages} - set(by_id)
    assert {p.event_id for p in held if not p.resolved} == unresolved
    assert all(by_id[p.event_id].purchase_label == 1 for p in held if p.resolved)


def test_restart_and_redelivery_change_no_label() -> None:
    rng = random.Random(3)
    ts, messages = 0, []
    for i in range(300):
        ts += rng.randint(0, 120)
        kind = rng.choice(EVENT_TYPES)
        messages.append(propensity(rng.choice("abcdef"), f"e{i}", kind, ts, rng.randint(0, 2)))
    records = [record(m, i) for i, m in enumerate(messages)]
    clean = Store()
    expected = {o.prediction.event_id: o.purchase_label for o in run(records, clean, [], set())}
    expected.update({o.prediction.event_id: o.purchase_label for o in clean.sweep()})

    store = Store()
    first = run(records[:170], store, [50, 120], {1})
    # the worker dies after storing state but before committing offsets: 100 records again
    again = run(records[70:], store, [30, 90], {0, 2})
    assert not [o for o in again if int(o.prediction.event_id[1:]) < 70]
    seen: dict[str, int] = {}
    for o in [*first, *again, *store.sweep()]:
        seen.setdefault(o.prediction.event_id, o.purchase_label)
        assert seen[o.prediction.event_id] == o.purchase_label, "a duplicate with another label"
    assert seen == expected


def test_a_purchase_resolves_only_predictions_within_their_horizon() -> None:
    store = Store()
    records = [
        record(propensity("u", "v1", "view", 0)),
        record(propensity("u", "v2", "view", 500)),
        record(propensity("u", "p", "purchase", 1_200)),
    ]
    result = join_batch(records, store.read, store.marks(), CONFIG)
    labels = {o.prediction.event_id: (o.purchase_label, o.resolved_by) for o in result.outcomes}
    # v1's horizon ended at 1000 < 1200: the purchase's own time closed it, a negative
    assert labels == {"v1": (0, "horizon"), "v2": (1, "purchase")}
    held = result.pending["u"].predictions
    assert [(p.event_id, p.resolved) for p in held] == [("v2", True), ("p", False)]
    v2 = next(o for o in result.outcomes if o.prediction.event_id == "v2")
    out = orjson.loads(v2.output.value or b"")
    assert out["labels"] == {"purchase": 1, "cart_abandon": None}
    assert out["resolved_at"] == 1_200 and out["scores"]["purchase"] == 0.25


def test_a_republished_copy_of_a_resolved_prediction_changes_nothing() -> None:
    """The scoring worker died after publishing v and p but before storing its state: it
    publishes them again after p. The copy of v must not start over (and end negative)."""
    store = Store()
    v, p = propensity("u", "v", "view", 0), propensity("u", "p", "purchase", 10)
    records = [record(v), record(p), record(v), record(p)]
    outcomes = run(records, store, [], set())
    assert [(o.prediction.event_id, o.purchase_label) for o in outcomes] == [("v", 1)]
    marks = store.marks()
    result = join_batch([record(propensity("x", "y", "view", 5_000))], store.read, marks, CONFIG)
    store.apply(result, marks)
    assert [(o.prediction.event_id, o.purchase_label) for o in store.sweep()] == [("p", 0)]
    assert "u" not in store.lists  # the resolved v left with its horizon


def test_users_who_never_return_resolve_when_the_watermark_passes() -> None:
    store = Store()
    first = [record(propensity("gone", "g", "add_to_cart", 0, cart_items=1))]
    later = [record(propensity("other", "o", "view", 1_002))]
    run(first, store, [], set())
    assert store.sweep() == []  # horizon open
    run(later, store, [], set())
    (outcome,) = store.sweep()
    assert outcome.user_id == "gone" and outcome.purchase_label == 0
    assert outcome.cart_abandon_label == 1 and outcome.resolved_at == HORIZON
    assert "gone" not in store.lists
    # a redelivered record of a user whose predictions are all resolved finds its horizon closed
    result = join_batch(first, store.read, store.marks(), CONFIG)
    assert [s.reason for s in result.skipped] == [TOO_LATE] and not result.outcomes


def test_a_redelivered_record_is_recognised_by_its_offset() -> None:
    store = Store()
    records = [
        record(propensity("u", "v", "view", 0), 7),
        record(propensity("u", "p", "purchase", 9), 8),
    ]
    first = run(records, store, [], set())
    assert [o.purchase_label for o in first] == [1]
    marks = store.marks()
    again = join_batch(records, store.read, marks, CONFIG)
    assert [s.reason for s in again.skipped] == [REDELIVERED, REDELIVERED]
    assert not again.outcomes and store.read("u").applied_offset == 8


def test_an_event_dated_ahead_of_the_wall_clock_moves_the_watermark_only_to_it() -> None:
    marks = Watermarks(0, now_ms=10_000)
    store = Store()
    records = [
        record(propensity("u", "v", "view", 9_500)),
        record(propensity("skewed", "s", "view", 10_000 + 3_600_000)),  # a clock an hour fast
    ]
    result = join_batch(records, store.read, marks, CONFIG)
    assert marks.newest == {0: 10_000} and not result.outcomes  # v's horizon (10,500) is open
    store.apply(result, marks)
    later = Watermarks(0, store.newest, now_ms=10_600)
    result = join_batch(
        [record(propensity("u", "p", "purchase", 10_400))], store.read, later, CONFIG
    )
    assert [(o.prediction.event_id, o.purchase_label) for o in result.outcomes] == [("v", 1)]


def test_allowed_lateness_holds_the_negative_back() -> None:
    marks = Watermarks(200)
    store = Store()
    config = JoinConfig(200, 100)
    records = [record(propensity("u", "v", "view", 0)), record(propensity("x", "y", "view", 1_100))]
    result = join_batch(records, store.read, marks, config)
    store.apply(result, marks)
    assert sweep([("u", 0, store.read("u"))], marks).outcomes == []  # known until 899 < 1000
    late = [record(propensity("u", "p", "purchase", 990))]  # 110 ms late, within 200
    result = join_batch(late, store.read, marks, config)
    assert [o.purchase_label for o in result.outcomes] == [1]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{", MALFORMED),
        (b"[1]", MALFORMED),
        (propensity("u", "e", "view", 5, horizon_ms=None), NO_HORIZON),
        (propensity("u", "e", "view", 5, horizon_ms=0), NO_HORIZON),
        (propensity("u", "e", "view", 5, model_version="other"), UNKNOWN_MODEL),
        (propensity("u", "e", "click", 5), MALFORMED),
        (propensity("u", "", "view", 5), MALFORMED),
        (propensity("u", "e" * 300, "view", 5), MALFORMED),
        (propensity("u", "e", "view", -1), MALFORMED),
        (
            propensity("u", "e", "view", 5, scores={"purchase": 1.5, "cart_abandon": None}),
            MALFORMED,
        ),
        (
            propensity("u", "e", "view", 5, scores={"purchase": True, "cart_abandon": None}),
            MALFORMED,
        ),
        (propensity("u", "e", "view", 5, scores=None), MALFORMED),
        (propensity("u", "e", "view", 5, user_id=7), MALFORMED),
    ],
)
def test_bad_propensities_are_skipped_with_a_reason(value: Any, reason: str) -> None:
    config = JoinConfig(0, 10, model_versions=frozenset({MODEL}))
    good = record(propensity("w", "ok", "view", 5), 1)
    result = join_batch([record(value), good], lambda _: PendingList(), Watermarks(0), config)
    assert [s.reason for s in result.skipped] == [reason]
    assert result.skipped[0].detail
    assert [p.event_id for p in result.pending["w"].predictions] == ["ok"]


def test_too_late_and_duplicate_propensities_are_skipped() -> None:
    store = Store()
    marks = store.marks()
    records = [
        record(propensity("u", "a", "view", 5_000)),
        record(propensity("u", "a", "view", 5_000)),  # republished after a restart
        record(propensity("v", "old", "view", 100)),  # its horizon closed before it came
    ]
    result = join_batch(records, store.read, marks, CONFIG)
    assert [s.reason for s in result.skipped] == [DUPLICATE, TOO_LATE]
    assert result.added == 1


def test_the_cap_per_user_drops_resolved_predictions_first_then_the_oldest_open() -> None:
    config = JoinConfig(0, 3)
    records = [record(propensity("u", f"e{i}", "view", i)) for i in range(5)]
    result = join_batch(records, lambda _: PendingList(), Watermarks(0), config)
    assert [p.event_id for p in result.pending["u"].predictions] == ["e2", "e3", "e4"]
    assert result.evicted == 2
    records = [
        record(propensity("w", "a", "view", 0)),
        record(propensity("w", "b", "purchase", 1)),  # resolves a (kept, marked)
        record(propensity("w", "c", "view", 2)),
        record(propensity("w", "d", "view", 3)),
    ]
    result = join_batch(records, lambda _: PendingList(), Watermarks(0), config)
    assert [p.event_id for p in result.pending["w"].predictions] == ["b", "c", "d"]
    assert result.evicted == 0


def prediction(i: int, cart: float | None = 0.5, version: str = MODEL) -> PendingPrediction:
    action = ("reminder", "incentive", None)[i % 3]
    return PendingPrediction(
        f"id-{i}",
        EVENT_TYPES[i % 5],
        10 * i,
        0.1 + i / 100,
        cart,
        version,
        7,
        i % 3 == 0,
        action,
        i % 2 == 0,
    )


def test_codec_round_trips_exactly() -> None:
    items = [prediction(i, None if i % 2 else 1 / 3, "m2" if i == 3 else MODEL) for i in range(6)]
    raw = encode_pending(PendingList(41, items))
    assert decode_pending(raw) == PendingList(41, items)
    assert pending_count(raw) == 6
    assert earliest_deadline_ms(raw) == 7
    assert decode_pending(encode_pending(PendingList())) == PendingList()
    one_version = [replace(prediction(i), action=None) for i in range(6)]
    grown = len(encode_pending(PendingList(0, one_version))) - len(
        encode_pending(PendingList(0, one_version[:1]))
    )
    assert grown / 5 == ENTRY_DTYPE.itemsize + len("id-1")  # fixed part + the event id


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x02" + bytes(12),
        encode_pending(PendingList(0, [prediction(1)]))[:-3],
        b"\x01" + bytes(12) + b"!",
    ],
)
def test_codec_refuses_what_it_did_not_write(raw: bytes) -> None:
    with pytest.raises(PendingFormatError):
        decode_pending(raw)


class FakeFaustTable:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}


def test_table_index_finds_due_users_and_survives_a_rebuild() -> None:
    faust_table: Any = FakeFaustTable()
    table = PendingOutcomeTable(faust_table)
    table.write("a", 0, PendingList(1, [prediction(1)]))  # deadline 17
    table.write("b", 0, PendingList(2, [prediction(5)]))  # deadline 57
    table.write("c", 1, PendingList(3, [prediction(0)]))  # deadline 7, other partition
    table.write_newest_event_ts(0, 99)
    assert table.newest_event_ts(0) == 99 and table.newest_event_ts(1) is None
    assert [u for u, _, _ in table.due({0: 20}, generation=1, limit=10)] == ["a"]
    assert table.due({0: 20}, generation=1, limit=10) == []  # taken out until reindexed
    fresh = PendingOutcomeTable(faust_table)  # a restarted worker: index rebuilt from the data
    assert sorted(u for u, _, _ in fresh.due({0: 100, 1: 100}, 1, 10)) == ["a", "b", "c"]
    assert table.pending_usage({0}) == (
        2,
        sum(len(encode_pending(PendingList(0, [prediction(i)]))) for i in (1, 5)),
    )
    _, value = table.write("a", 0, PendingList(3, []))
    assert value is None and table.read("a") == PendingList()
    assert math.isclose(table.read("b").predictions[0].purchase, 0.15)


def test_a_tracked_action_resolves_by_the_same_rule_into_an_action_outcome() -> None:
    from streams.worker.outcome_join.step import track_action

    store = Store()
    marks = store.marks()
    first = join_batch(
        [record(propensity("u", "c", "add_to_cart", 0, 1))], store.read, marks, CONFIG
    )
    action = PendingPrediction("a" * 32, "add_to_cart", 100, 0.3, 0.8, MODEL, 500, False, "nudge")
    control = replace(action, event_id="b" * 32, action="other", control=True, event_ts=700)
    track_action("u", 0, action, first.pending, store.read)
    track_action("u", 0, action, first.pending, store.read)  # redelivered: held once
    track_action("u", 0, control, first.pending, store.read)
    store.apply(first, marks)
    marks = store.marks()
    bought = join_batch([record(propensity("u", "p", "purchase", 550))], store.read, marks, CONFIG)
    store.apply(bought, marks)
    outs = {o.prediction.event_id: orjson.loads(o.output.value or b"") for o in bought.outcomes}
    assert outs["a" * 32] == {
        "action_id": "a" * 32,
        "action": "nudge",
        "user_id": "u",
        "assignment": "treatment",
        "decided_at": 100,
        "horizon_ms": 500,
        "converted": 1,
        "resolved_at": 550,
    }
    assert outs["c"]["labels"]["purchase"] == 1  # the propensity, as before
    assert "b" * 32 not in outs  # decided after the purchase: still open
    marks = store.marks()
    later = join_batch([record(propensity("x", "y", "view", 1_300))], store.read, marks, CONFIG)
    store.apply(later, marks)
    (closed,) = [o for o in store.sweep() if o.is_action]
    out = orjson.loads(closed.output.value or b"")
    assert (out["assignment"], out["converted"], out["resolved_at"]) == ("control", 0, 1_200)
