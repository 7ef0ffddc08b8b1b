"""Actions in the propensities agent's step: decisions published as action records, held in
the outcome join so their uplift outcome follows by the same rule, suppressions counted."""

import itertools
from typing import Any

import orjson

from schemas.outputs import encode, propensity_event
from streams.worker.actions.handler import ActionHandler
from streams.worker.actions.policy import parse_policy
from streams.worker.actions.table import ActionStateTable
from streams.worker.metrics import WorkerMetrics
from streams.worker.outcome_join.pending import PendingList
from streams.worker.outcome_join.step import JoinConfig, Watermarks, join_batch, sweep
from streams.worker.scoring_step import InputRecord
from streams.worker.settings import Settings

MIN = 60_000
T0 = 1_700_000_000_000  # 2023-11-14 22:13 UTC: outside the quiet hours below
POLICY = b"""
[policy]
salt = "test"
control_share = 0.0
timezone = "UTC"
daily_cap = 0
uplift_horizon_hours = 1

[actions.cart_reminder]
priority = 10
trigger = "inactivity"
head = "cart_abandon"
min_score = 0.5
inactive_minutes = 30
cart = "non_empty"
cooldown_hours = 20
"""


class Capture:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    def enqueue(self, topic: str, key: bytes | None, value: bytes | None, **_: Any) -> None:
        self.sent.append((topic, key, value))


class FakeFaustTable:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}


_offsets = itertools.count()


def propensity(event_id: str, kind: str, ts: int, cart: int, user: str = "u1") -> InputRecord:
    body = propensity_event(
        user_id=user,
        purchase=0.3,
        cart_abandon=0.8 if cart else None,
        cart_items=cart,
        cart_value=30.0 * cart,
        model_version="m1",
        horizon_ms=60 * MIN,
        event_id=event_id,
        event_type=kind,
        event_ts=ts,
        input_ts=None,
        scored_at=0,
    )
    key = user.encode()
    return InputRecord("propensities", 0, next(_offsets), key, encode(body), None, 0.0)


def test_an_inactivity_action_is_published_and_its_uplift_outcome_follows() -> None:
    policy = parse_policy(POLICY, "test.toml")
    settings = Settings()
    metrics, sink = WorkerMetrics(), Capture()
    table = ActionStateTable(FakeFaustTable(), policy)
    handler = ActionHandler(settings, metrics, sink, policy, table)  # type: ignore[arg-type]
    changelog: list[tuple[bytes, bytes | None, int]] = []
    stored: dict[str, PendingList] = {}
    config = JoinConfig(0, 100)

    def read(user: str) -> PendingList:
        return stored.get(user, PendingList())

    def run(records: list[InputRecord], marks: Watermarks) -> None:
        result = join_batch(records, read, marks, config)
        handler.handle(records, result.pending, read, lambda *r: changelog.append(r))
        for user, entry in result.pending.items():
            stored[user] = entry.pending

    marks = Watermarks(0)
    run([propensity("e1", "add_to_cart", T0, 1)], marks)
    assert not [s for s in sink.sent if s[0] == settings.actions_topic]  # not yet: 30 min
    # The shopper comes back after 10 minutes: the trigger restarts from this event.
    run([propensity("e2", "view", T0 + 10 * MIN, 1)], marks)
    other = propensity("x", "view", T0 + 41 * MIN, 0, user="u2")
    run([other], marks)  # the watermark passes e2 + 30 min
    result = sweep([], marks)
    handler.sweep(marks, 1, result.pending, read, lambda *r: changelog.append(r))
    for user, entry in result.pending.items():
        stored[user] = entry.pending
    actions = [orjson.loads(v or b"") for t, _, v in sink.sent if t == settings.actions_topic]
    assert [(a["action"], a["event_id"], a["decided_at"]) for a in actions] == [
        ("cart_reminder", "e2", T0 + 40 * MIN)
    ]
    assert actions[0]["assignment"] == "treatment" and actions[0]["policy_hash"]
    held = [p for p in stored["u1"].predictions if p.action is not None]
    assert [(p.event_id, p.event_ts, p.horizon_ms) for p in held] == [
        (actions[0]["action_id"], T0 + 40 * MIN, 60 * MIN)
    ]
    sample = metrics.registry.get_sample_value
    assert (
        sample(
            "propensity_actions_decided_total",
            {"action": "cart_reminder", "assignment": "treatment", "policy": policy.policy_hash},
        )
        == 1
    )
    assert {key for key, _, _ in changelog} == {b"u1", b"u2"}


class NamedFakeTable(FakeFaustTable):
    class _Topic:
        def __init__(self, name: str) -> None:
            self.name = name

        def get_topic_name(self) -> str:
            return self.name

    def __init__(self, name: str) -> None:
        super().__init__()
        self.changelog_topic = self._Topic(name)


def test_records_redelivered_to_the_propensities_agent_decide_nothing_again() -> None:
    """After a restart the agent gets records the join and the actions applied already: the
    join says so by their offsets, and the actions skip them (no new record, no spurious
    cooldown suppression)."""
    from types import SimpleNamespace

    from streams.worker.agents.outcomes import OutcomeHandler
    from streams.worker.outcome_join.table import PendingOutcomeTable

    event_policy = POLICY.replace(b'trigger = "inactivity"', b'trigger = "event"')
    policy = parse_policy(event_policy.replace(b"inactive_minutes = 30\n", b""), "t")
    settings = Settings()
    metrics, sink = WorkerMetrics(), Capture()
    actions_table = ActionStateTable(NamedFakeTable("actions-changelog"), policy)
    runtime = SimpleNamespace(
        pending_outcomes=PendingOutcomeTable(NamedFakeTable("pending-changelog")),
        action_states=actions_table,
    )
    actions = ActionHandler(settings, metrics, sink, policy, actions_table)  # type: ignore[arg-type]
    handler = OutcomeHandler(runtime, settings, metrics, sink, "m1", actions)  # type: ignore[arg-type]
    records = [propensity("r1", "add_to_cart", T0, 1), propensity("r2", "add_to_cart", T0 + MIN, 1)]
    handler.handle(records)
    handler.handle(records)  # redelivered: the worker died before committing them
    published = [v for t, _, v in sink.sent if t == settings.actions_topic]
    assert len(published) == 1  # r1 decided; r2 within the cooldown
    sample = metrics.registry.get_sample_value
    labels = {"action": "cart_reminder", "reason": "cooldown", "policy": policy.policy_hash}
    assert sample("propensity_actions_suppressed_total", labels) == 1  # r2 once, not twice
