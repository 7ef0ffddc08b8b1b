"""Start the scoring worker: check the model and topics, then run the Faust app."""

import logging

import faust
import torch
from prometheus_client import start_http_server

from model.monitoring.reference import reference_figures
from model.serving.export import LoadedModel, load_model
from model.serving.scorer import SequenceScorer
from schemas.exceptions import PropensityError
from streams.worker.actions.exceptions import PolicyError
from streams.worker.actions.policy import load_policy
from streams.worker.actions.rules import Policy
from streams.worker.admin import admin_client, ensure_topics, service_topics
from streams.worker.agents import FatalHandler, register_agents
from streams.worker.agents.drift_report import drift_window
from streams.worker.agents.scoring import BatchHandler
from streams.worker.app import Runtime, create_app
from streams.worker.metrics import WorkerMetrics
from streams.worker.publisher import Publisher
from streams.worker.settings import Settings

log = logging.getLogger(__name__)


class TopicLayoutError(PropensityError):
    """Input topics whose partition counts differ from the state table's."""


def check_partitions(settings: Settings) -> None:
    """Every input topic, and the propensities topic that the outcome join reads, must have
    `partitions` partitions: the tables are co-partitioned with them."""
    topics = [*settings.input_topics, *([settings.output_topic] if settings.outcome_join else [])]
    admin = admin_client(settings)
    try:
        described = admin.describe_topics(topics)
    finally:
        admin.close()
    for topic in described:
        count = len(topic.get("partitions") or [])
        if count != settings.partitions:
            raise TopicLayoutError(
                f"topic {topic['topic']!r} has {count} partitions but PROPENSITY_PARTITIONS="
                f"{settings.partitions}: the tables must be co-partitioned with the topics they"
                " follow (inputs: user states; propensities: pending outcomes)"
            )


def build_worker(
    settings: Settings,
    model: LoadedModel,
    metrics: WorkerMetrics,
    publisher: Publisher | None = None,
    on_fatal: FatalHandler | None = None,
    policy: Policy | None = None,
) -> tuple[Runtime, BatchHandler]:
    """The app with its agents, ready to run; tests pass their own publisher and fatal handler.
    With a ``policy`` (and the outcome join on), marketing actions are decided too."""
    runtime = create_app(settings, policy)
    scorer = SequenceScorer(model, window_size=settings.window_size, ttl_ms=settings.user_ttl_ms)
    metrics.drift_psi_threshold.set(settings.drift_psi_threshold)
    handler = register_agents(
        runtime,
        scorer,
        settings,
        metrics,
        model.meta.horizon_ms,
        publisher=publisher,
        on_fatal=on_fatal,
        drift=drift_window(model, settings),
        policy=policy,
    )
    return runtime, handler


def publish_model_info(metrics: WorkerMetrics, model: LoadedModel) -> None:
    metrics.model_info.info(
        {
            "model_version": model.meta.model_version,
            "horizon_ms": str(model.meta.horizon_ms),
            "feature_spec_hash": model.meta.feature_spec_hash,
        }
    )
    metrics.model_loaded.set(1)
    metrics.set_model_reference(model.meta.model_version, reference_figures(model.meta.metrics))


def run_worker(settings: Settings, *, create_topics: bool = True) -> None:
    """Blocking: load the model (refusing a bad one), prepare topics and run until stopped."""
    # Raises ModelArtifactError with a one-line reason; an empty model_sha256 pins nothing.
    model = load_model(settings.model_path, expected_sha256=settings.model_sha256)
    # Raises PolicyError naming each wrong line of the file.
    policy = load_policy(settings.policy_path) if settings.policy_path else None
    if policy is not None and not settings.outcome_join:
        raise PolicyError(
            "PROPENSITY_POLICY_PATH is set but PROPENSITY_OUTCOME_JOIN=false: actions are"
            " decided in the outcome join's agent (one watermark); turn the join on"
        )
    torch.set_num_threads(settings.torch_threads)
    if create_topics:
        ensure_topics(settings, service_topics(settings))
    check_partitions(settings)
    metrics = WorkerMetrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, settings.metrics_host, registry=metrics.registry)
    publish_model_info(metrics, model)
    metrics.up.set(1)
    runtime, _ = build_worker(settings, model, metrics, policy=policy)
    log.info(
        "serving model %s (horizon %d ms, content sha256 %s)",
        model.meta.model_version,
        model.meta.horizon_ms,
        model.meta.content_sha256 or "not recorded",
    )
    worker = faust.Worker(runtime.app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
