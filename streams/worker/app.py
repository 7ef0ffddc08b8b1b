"""The one faust.App, its topics and tables (user states, pending outcomes), built from
Settings."""

from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TopicT

from streams.worker.actions.rules import Policy
from streams.worker.actions.table import ActionStateTable
from streams.worker.kafka_security import faust_credentials
from streams.worker.outcome_join.table import PendingOutcomeTable
from streams.worker.settings import Settings
from streams.worker.tables import BundledTable, UserStateTable
from streams.worker.transport import BundlingConsumerThread

TABLE_NAME = "user-states"
PENDING_TABLE_NAME = "pending-outcomes"
ACTION_TABLE_NAME = "action-states"


@dataclass
class Runtime:
    """Everything the agents are wired to (tests swap the output topics for captures)."""

    app: faust.App
    input_topic: TopicT
    output_topic: TopicT  # the propensities: published by scoring, read by the outcome join
    dlq_topic: TopicT
    actions_topic: TopicT  # published by the outcome agent's actions, read by delivery
    user_states: UserStateTable
    pending_outcomes: PendingOutcomeTable
    action_states: ActionStateTable | None = None  # with a policy only


def create_app(settings: Settings, policy: Policy | None = None) -> Runtime:
    """Build the Faust app. Messages stay raw bytes: decoding is ours (orjson + schema)."""
    BundlingConsumerThread.verify_changelog_end = settings.verify_changelog_end
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=faust_credentials(settings),  # TLS/SASL, None for PLAINTEXT
        store=settings.table_store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,  # /metrics is served by prometheus_client (streams.worker.service)
        autodiscover=False,
        stream_wait_empty=False,
        # At most this many records per fetch; they reach the agent as per-partition bundles.
        broker_max_poll_records=settings.batch_size,
        # Tansu holds a join for the whole rebalance timeout even with one member.
        broker_rebalance_timeout=settings.rebalance_timeout_seconds,
        broker_session_timeout=settings.session_timeout_seconds,
        consumer_group_instance_id=settings.group_instance_id or None,
        # Applies the changelog bundles of the bundling transport during recovery.
        Table=BundledTable,
    )
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    input_topic = app.topic(*settings.input_topics, **raw)
    output_topic = app.topic(settings.output_topic, **raw)
    dlq_topic = app.topic(settings.dlq_topic, **raw)
    actions_topic = app.topic(settings.actions_topic, **raw)
    # Table serializers follow the app's defaults (raw) set above.
    table = app.Table(
        TABLE_NAME, default=None, partitions=settings.partitions, key_type=bytes, value_type=bytes
    )
    pending = app.Table(
        PENDING_TABLE_NAME,
        default=None,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
    )
    actions = None
    if policy is not None:
        actions = ActionStateTable(
            app.Table(
                ACTION_TABLE_NAME,
                default=None,
                partitions=settings.partitions,
                key_type=bytes,
                value_type=bytes,
            ),
            policy,
        )
    return Runtime(
        app,
        input_topic,
        output_topic,
        dlq_topic,
        actions_topic,
        UserStateTable(table),
        PendingOutcomeTable(pending),
        actions,
    )
