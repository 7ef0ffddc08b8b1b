"""Marketing actions on a real broker: a scripted shopper sequence gives exactly the expected
actions (cooldown, daily cap, quiet hours, inactivity after the last event), and a worker
killed mid-stream adds nothing that action_id de-duplication does not remove."""

import asyncio
import hashlib
import time
from pathlib import Path

import fastjsonschema
import orjson
import pytest
from click.testing import CliRunner

from schemas.events import ShopEvent, load_json_schema
from streams.cli import main
from streams.harness.drills import clock_records
from streams.harness.producer import record_for_event, send_records
from streams.worker.admin import ensure_topics, service_topics
from tests.kafka_helpers import collect, start_worker, worker_settings

pytestmark = pytest.mark.integration

MIN = 60_000
DAY = 1_704_844_800_000  # 2024-01-10 00:00 UTC
POLICY = """
[policy]
salt = "integration"
control_share = 0.0
timezone = "UTC"
daily_cap = 2
uplift_horizon_hours = 1

[actions.cart_reminder]
priority = 10
trigger = "inactivity"
head = "cart_abandon"
inactive_minutes = 30
cart = "non_empty"
cooldown_hours = 20
quiet_hours = "22:00-06:00"
quiet_hours_mode = "hold"

[actions.checkout_nudge]
priority = 5
trigger = "event"
head = "purchase"
event_types = ["add_to_cart"]
cooldown_hours = 6
"""


def at(hour: int, minute: int = 0) -> int:
    return DAY + hour * 60 * MIN + minute * MIN


def cart(user: str, event_id: str, ts: int) -> ShopEvent:
    return ShopEvent("add_to_cart", user, "sku-1", ts, event_id, f"{user}-s", None, 25.0, 1)


FIRST = [
    cart("cool", "cool-1", at(10)),  # nudge
    cart("cool", "cool-2", at(10, 5)),  # nudge suppressed: cooldown 6 h
    cart("back", "back-1", at(12)),  # nudge
    ShopEvent("view", "back", "sku-1", at(12, 20), "back-2", "back-s"),  # back before 30 min
]
SECOND = [
    cart("cap", "cap-1", at(6, 30)),  # nudge (1 today) and its reminder at 07:00 (2)
    cart("cap", "cap-2", at(13)),  # nudge off cooldown, but the daily cap of 2 holds
    cart("quiet", "quiet-1", at(21, 40)),  # nudge; its reminder (22:10) held to 06:00
]
EXPECTED = {
    ("cool", "checkout_nudge", "cool-1", at(10)),
    ("cool", "cart_reminder", "cool-2", at(10, 35)),
    ("back", "checkout_nudge", "back-1", at(12)),
    ("back", "cart_reminder", "back-2", at(12, 50)),  # 30 min after the LAST event
    ("cap", "checkout_nudge", "cap-1", at(6, 30)),
    ("cap", "cart_reminder", "cap-1", at(7)),
    ("quiet", "checkout_nudge", "quiet-1", at(21, 40)),
    ("quiet", "cart_reminder", "quiet-1", at(22, 10)),  # decided in quiet hours, held
}


def test_scripted_shoppers_get_exactly_the_expected_actions_across_a_restart(
    kafka_bootstrap: str, untrained_model: Path, tmp_path: Path, unique_name: str
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    settings = worker_settings(
        unique_name,
        kafka_bootstrap,
        untrained_model,
        tmp_path,
        policy_path=str(policy),
        actions_topic=f"{unique_name}.actions",
        action_outcomes_topic=f"{unique_name}.action-outcomes",
        session_timeout_seconds=6.0,
    )
    ensure_topics(settings, service_topics(settings))
    topics = settings.input_topics

    def send(events: list[ShopEvent]) -> None:
        asyncio.run(send_records(settings, [record_for_event(e, topics) for e in events]))

    worker = start_worker(settings, tmp_path / "first.log")
    worker.wait_ready()
    send(FIRST)
    asyncio.run(collect(kafka_bootstrap, [settings.output_topic], expected=len(FIRST), timeout=60))
    worker.process.kill()  # SIGKILL: no shutdown, no final commit
    worker.process.wait()
    successor = start_worker(settings, tmp_path / "second.log")
    try:
        successor.wait_ready(180)
        send(SECOND)
        send([])  # the clock events below go out after everything else
        asyncio.run(send_records(settings, clock_records(settings, at(24 + 7))))
        found = asyncio.run(
            collect(
                kafka_bootstrap,
                [settings.actions_topic],
                expected=len(EXPECTED),
                timeout=120,
                settle=5.0,
            )
        )
        outcomes = asyncio.run(
            collect(
                kafka_bootstrap,
                [settings.action_outcomes_topic],
                expected=len(EXPECTED),
                timeout=60,
            )
        )
        # The uplift service reads them back: four users per action, all in treatment here.
        wanted = [
            f'propensity_uplift_users{{action="{action}",assignment="treatment"}} 4.0'
            for action in ("cart_reminder", "checkout_nudge")
        ]
        deadline = time.monotonic() + 30
        while not all(line in successor.metrics() for line in wanted):
            assert time.monotonic() < deadline, successor.metrics()[-3000:]
            time.sleep(0.5)
    finally:
        code = successor.stop()
    assert code == 0, successor.log()[-3000:]

    validate = fastjsonschema.compile(load_json_schema("action_record.schema.json"))
    by_id: dict[str, dict[str, object]] = {}
    for message in found:
        body = orjson.loads(message.value)
        validate(body)
        assert message.key == body["user_id"].encode()
        previous = by_id.setdefault(body["action_id"], body)
        assert previous == body, "a redelivered decision must be the same decision"
        wanted = hashlib.sha256(f"{body['event_id']}|{body['action']}".encode()).hexdigest()
        assert body["action_id"] == wanted[:32]
        assert body["assignment"] == "treatment"
    got = {(b["user_id"], b["action"], b["event_id"], b["decided_at"]) for b in by_id.values()}
    assert got == EXPECTED
    print(f"{len(found)} action records, {len(by_id)} distinct after de-duplication")
    # every action (held ones included) is joined with whether the shopper bought
    joined = {orjson.loads(m.value)["action_id"] for m in outcomes}
    assert joined == set(by_id)
    # `propensity uplift` reads the same outcomes into its table and report
    report = tmp_path / "uplift"
    topic = settings.action_outcomes_topic
    command = ["uplift", "-b", kafka_bootstrap, "--topic", topic, "--report", str(report)]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    text = (report / "README.md").read_text()
    for action in ("cart_reminder", "checkout_nudge"):
        assert f"| {action} | 4 |" in text  # four treated users each, no control group here
