"""The deliver_actions agent: POSTs the treatment actions of the actions topic to the shop's
webhook (only when PROPENSITY_WEBHOOK_URL is set).

It reads the actions topic like any consumer of it, so delivery never holds up scoring or
deciding. Each batch is delivered (with retries, backoff and the rate limit of
``streams.worker.actions.webhook``), what could not be delivered goes to the actions
dead-letter topic with its status and attempts, and only then does the agent let Faust ack
the batch: at least once. A redelivered batch is POSTed again with the same Idempotency-Key
(the action id), which the receiver uses to discard the repeat. Control-group actions are
recorded, never sent. A record that is not an action record goes to the dead-letter topic
too (reason ``malformed_action``).
"""

import asyncio
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from schemas.outputs import DLQ_HEADER_DETAIL, DLQ_HEADER_REASON, TREATMENT
from streams.worker.actions.webhook import WebhookSender
from streams.worker.agents.fail_stop import FatalHandler
from streams.worker.agents.scoring import MAX_BUNDLES, input_records
from streams.worker.app import Runtime
from streams.worker.metrics import WorkerMetrics
from streams.worker.publisher import Publisher
from streams.worker.scoring_step import InputRecord
from streams.worker.settings import Settings

MALFORMED_ACTION = "malformed_action"


def webhook_sender(settings: Settings) -> WebhookSender:
    """The sender the settings describe (WebhookError, one line, for unusable ones)."""
    headers = (
        {"Authorization": settings.webhook_authorization} if settings.webhook_authorization else {}
    )
    return WebhookSender(
        settings.webhook_url,
        timeout_seconds=settings.webhook_timeout_seconds,
        max_attempts=settings.webhook_max_attempts,
        rate_limit_per_second=settings.webhook_rate_limit_per_second,
        headers=headers,
    )


class Batch(NamedTuple):
    deliveries: list[tuple[str, bytes]]  # (action id, body) of the treatment actions
    keys: dict[str, bytes | None]  # action id -> Kafka key (the user), for dead letters
    malformed: list[tuple[InputRecord, str]]  # records that are not actions, and why


def to_deliver(records: Sequence[InputRecord]) -> Batch:
    """What to POST of a batch of action records."""
    batch = Batch([], {}, [])
    for record in records:
        try:
            body = orjson.loads(record.value or b"")
            action_id, assignment = body["action_id"], body["assignment"]
            if not isinstance(action_id, str) or not isinstance(assignment, str):
                raise TypeError("action_id and assignment must be strings")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            batch.malformed.append((record, f"not an action record: {exc!r}"))
            continue
        if assignment == TREATMENT and record.value is not None:
            batch.deliveries.append((action_id, record.value))
            batch.keys[action_id] = record.key
    return batch


class DeliveryHandler:
    def __init__(
        self, settings: Settings, metrics: WorkerMetrics, sink: Publisher, sender: WebhookSender
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.sink = sink
        self.sender = sender

    async def deliver(self, records: Sequence[InputRecord]) -> None:
        """Deliver a batch; dead-letter what failed; return once the dead letters are acked."""
        batch = to_deliver(records)
        topic = self.settings.action_dlq_topic
        for record, detail in batch.malformed:
            headers = [
                (DLQ_HEADER_REASON, MALFORMED_ACTION.encode()),
                (DLQ_HEADER_DETAIL, detail[:1000].encode("utf-8", "replace")),
            ]
            self.sink.enqueue(topic, record.key, record.value, headers=headers)
        for failure in await self.sender.deliver(batch.deliveries):
            headers = self.sender.dead_letter_headers(failure)
            key = batch.keys.get(failure.action_id)
            self.sink.enqueue(topic, key, failure.body, headers=headers)
        await self.sink.flush()
        counts = self.sender.take_counts()
        for outcome, count in (
            ("ok", counts.ok),
            ("retried", counts.retried),
            ("failed", counts.failed + len(batch.malformed)),
        ):
            if count:
                self.metrics.webhook_requests.labels(outcome).inc(count)


def register(
    runtime: Runtime,
    settings: Settings,
    metrics: WorkerMetrics,
    sink: Publisher,
    fatal: FatalHandler,
) -> DeliveryHandler:
    """Attach the deliver_actions agent (call only with a webhook URL set)."""
    sender = webhook_sender(settings)
    handler = DeliveryHandler(settings, metrics, sink, sender)

    # concurrency must stay 1: faust-streaming #606 commits offsets past in-flight messages.
    @runtime.app.agent(runtime.actions_topic, name="deliver_actions", concurrency=1)
    async def deliver_actions(stream: Any) -> None:
        await sink.prepare([settings.action_dlq_topic])
        await sender.start()
        within = settings.batch_wait_ms / 1000.0
        try:
            async for events in stream.take_events(MAX_BUNDLES, within=within):
                records = [r for e in events for r in input_records(e, time.time())]
                try:
                    await handler.deliver(records)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the webhook's faults are dead letters: this is ours
                    fatal(exc)
                    raise
        finally:
            await sender.stop()

    return handler
