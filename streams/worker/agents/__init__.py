"""The worker's agents and timers, one module each (wiring between Faust and pure code);
``register_agents`` attaches them all to the app with the Kafka clients they share."""

from mode import Service

from model.monitoring.drift import DriftWindow
from model.serving.scorer import SequenceScorer
from streams.worker.actions.handler import ActionHandler
from streams.worker.actions.rules import Policy
from streams.worker.agents import delivery, drift_report, housekeeping, outcomes, scoring
from streams.worker.agents.fail_stop import FATAL_EXIT_CODE, FatalHandler, fail_stop
from streams.worker.agents.scoring import BatchHandler
from streams.worker.app import Runtime
from streams.worker.kafka_security import aiokafka_options
from streams.worker.lag import LagMonitor
from streams.worker.live_quality import LiveQualityFollower
from streams.worker.metrics import WorkerMetrics
from streams.worker.publisher import BatchPublisher, Publisher
from streams.worker.settings import Settings
from streams.worker.topic_follower import TopicFollower
from streams.worker.uplift_follower import UpliftFollower

__all__ = ["FATAL_EXIT_CODE", "FatalHandler", "fail_stop", "register_agents"]


def register_agents(
    runtime: Runtime,
    scorer: SequenceScorer,
    settings: Settings,
    metrics: WorkerMetrics,
    horizon_ms: int,
    publisher: Publisher | None = None,
    on_fatal: FatalHandler | None = None,
    drift: DriftWindow | None = None,
    policy: Policy | None = None,
) -> BatchHandler:
    """Attach the scoring agent, the outcome join (unless turned off) and the housekeeping
    timers to the app.

    ``on_fatal`` is called with any exception from scoring or publishing (default: fail_stop,
    which ends the process); tests pass their own.
    """
    fatal = on_fatal or fail_stop(metrics)
    sink: Publisher = publisher or BatchPublisher(
        settings.bootstrap, security=aiokafka_options(settings)
    )
    lag_monitor = LagMonitor(settings, metrics)
    handler = scoring.register(
        runtime, scorer, settings, metrics, sink, horizon_ms, fatal, drift=drift
    )
    if settings.outcome_join:
        actions = None
        if policy is not None and runtime.action_states is not None:
            actions = ActionHandler(settings, metrics, sink, policy, runtime.action_states)
        outcomes.register(runtime, settings, metrics, sink, scorer.model_version, fatal, actions)
    if settings.webhook_url:
        delivery.register(runtime, settings, metrics, sink, fatal)
    housekeeping.register(runtime, settings, metrics, sink, lag_monitor)
    if drift is not None:
        drift_report.register(runtime, scorer.model_version, metrics, drift)
    followers: list[TopicFollower] = []
    if settings.live_quality:
        followers.append(LiveQualityFollower(settings, metrics))
    if policy is not None:
        followers.append(UpliftFollower(settings, metrics))
    for follower in followers:
        runtime.app.task(follower.run)

    class KafkaClientsService(Service):
        """Closes the worker's own Kafka clients when the app stops."""

        async def on_stop(self) -> None:
            await lag_monitor.close()
            for follower in followers:
                await follower.stop()
            await sink.stop()

    runtime.app.service(KafkaClientsService)
    return handler
