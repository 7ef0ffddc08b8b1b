"""The deliver_actions agent's batch: treatment actions POSTed, control ones recorded only,
failures and non-actions dead-lettered with their reasons, counts exported."""

from collections.abc import Sequence
from typing import Any

import orjson

from schemas.outputs import action_record
from streams.worker.actions.webhook import DeliveryFailure, WebhookCounts
from streams.worker.agents.delivery import DeliveryHandler
from streams.worker.metrics import WorkerMetrics
from streams.worker.scoring_step import InputRecord
from streams.worker.settings import Settings


class Capture:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, Any]] = []
        self.flushes = 0

    def enqueue(self, topic: str, key: bytes | None, value: bytes | None, **kw: Any) -> None:
        self.sent.append((topic, key, value, kw.get("headers")))

    async def flush(self) -> int:
        self.flushes += 1
        return len(self.sent)


class FakeSender:
    """Fails the action ids it is told to, like the webhook after its retries."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.posted: list[str] = []

    async def deliver(self, records: Sequence[tuple[str, bytes]]) -> list[DeliveryFailure]:
        self.posted += [action_id for action_id, _ in records]
        return [
            DeliveryFailure(action_id, body, 503, "http_503", 5)
            for action_id, body in records
            if action_id in self.failing
        ]

    def dead_letter_headers(self, failure: DeliveryFailure) -> list[tuple[str, bytes]]:
        return [("dlq.reason", failure.reason.encode())]

    def take_counts(self) -> WebhookCounts:
        return WebhookCounts(ok=len(self.posted) - len(self.failing), retried=4, failed=1)


def action(action_id: str, assignment: str) -> InputRecord:
    body = action_record(
        action_id=action_id,
        action="cart_reminder",
        user_id="u1",
        assignment=assignment,
        decided_at=1,
        event_id="e1",
        model_version="m",
        purchase=0.2,
        cart_abandon=0.8,
        reason="test",
        policy_hash="p",
    )
    return InputRecord("actions", 0, 0, b"u1", orjson.dumps(body), None, 0.0)


async def test_treatment_is_posted_control_is_not_and_failures_are_dead_lettered() -> None:
    settings = Settings(webhook_url="http://127.0.0.1:9/hook")
    metrics, sink = WorkerMetrics(), Capture()
    sender = FakeSender(failing={"b" * 32})
    handler = DeliveryHandler(settings, metrics, sink, sender)  # type: ignore[arg-type]
    broken = InputRecord("actions", 0, 1, b"u2", b"{not json", None, 0.0)
    await handler.deliver(
        [
            action("a" * 32, "treatment"),
            action("b" * 32, "treatment"),
            action("c" * 32, "control"),
            broken,
        ]
    )
    assert sender.posted == ["a" * 32, "b" * 32]
    dead = [(key, dict(headers)["dlq.reason"]) for topic, key, _, headers in sink.sent]
    assert all(topic == settings.action_dlq_topic for topic, *_ in sink.sent)
    assert sorted(dead) == [(b"u1", b"http_503"), (b"u2", b"malformed_action")]
    assert sink.flushes == 1
    sample = metrics.registry.get_sample_value
    assert sample("propensity_action_webhook_requests_total", {"outcome": "failed"}) == 2
    assert sample("propensity_action_webhook_requests_total", {"outcome": "retried"}) == 4
