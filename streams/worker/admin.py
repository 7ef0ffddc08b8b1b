"""Topic administration with kafka-python: create the service's topics if missing."""

from collections.abc import Iterable

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.worker.kafka_security import kafka_python_options
from streams.worker.settings import Settings


def service_topics(settings: Settings) -> list[str]:
    """Input, output, dead-letter and outcome topics, and those of marketing actions when a
    policy is set (changelog topics are created by Faust)."""
    topics = [*settings.input_topics, settings.output_topic, settings.dlq_topic]
    topics.append(settings.outcomes_topic)
    if settings.policy_path:
        topics += [settings.actions_topic, settings.action_outcomes_topic]
    if settings.webhook_url:
        topics.append(settings.action_dlq_topic)
    return topics


def admin_client(settings: Settings, client_id: str = "propensity-admin") -> KafkaAdminClient:
    """A connected admin client; kafka-python raises KafkaTimeoutError when no bootstrap server
    answers within ``bootstrap_timeout_seconds``."""
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        client_id=client_id,
        bootstrap_timeout_ms=int(settings.bootstrap_timeout_seconds * 1000),
        **kafka_python_options(settings),
    )


def ensure_topics(settings: Settings, topics: Iterable[str]) -> list[str]:
    """Create each missing topic with ``settings.partitions`` partitions; return those created."""
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        created = []
        for topic in missing:
            try:
                admin.create_topics([NewTopic(topic, settings.partitions, 1)])
                created.append(topic)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
