"""Topic administration with kafka-python: create the service's topics if missing."""

from collections.abc import Iterable

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.settings import Settings


def service_topics(settings: Settings) -> list[str]:
    """Input, output and dead-letter topics (changelog topics are created by Faust)."""
    return [*settings.input_topics, settings.output_topic, settings.dlq_topic]


def ensure_topics(bootstrap_servers: str, topics: Iterable[str], partitions: int) -> list[str]:
    """Create each missing topic with ``partitions`` partitions; return the ones created."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="propensity-admin")
    try:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        created = []
        for topic in missing:
            try:
                admin.create_topics([NewTopic(topic, partitions, 1)])
                created.append(topic)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
