"""The scoring agent under Faust's test_context: no broker, memory store."""

from pathlib import Path
from typing import Any

import orjson
import pytest

from model.export import load_model
from streams.metrics import WorkerMetrics
from streams.settings import Settings
from streams.worker import build_worker

T0 = 1_700_000_000_000


class CapturingTopic:
    """Stands in for an output topic at the seam we own: records what the agent sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_soon(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


@pytest.fixture
def worker(untrained_model: Path, tmp_path: Path) -> Any:
    settings = Settings(
        app_id="agent-test",
        model_path=untrained_model,
        data_dir=tmp_path,
        batch_wait_ms=1,
        partitions=1,
    )
    metrics = WorkerMetrics()
    runtime, _ = build_worker(settings, load_model(untrained_model), metrics)
    output, dlq = CapturingTopic(), CapturingTopic()
    runtime.output_topic, runtime.dlq_topic = output, dlq
    changelog: list[tuple[int, bytes, bytes | None]] = []
    runtime.user_states.table.send_changelog = lambda p, k, v, **_: changelog.append((p, k, v))
    return runtime, metrics, output, dlq, changelog


def event(user: str, kind: str, step: int) -> bytes:
    return orjson.dumps(
        {"event_type": kind, "user_id": user, "item_id": "i1", "ts": T0 + step * 1000}
    )


async def test_agent_publishes_one_score_per_event_and_dead_letters_bad_input(worker: Any) -> None:
    runtime, metrics, output, dlq, changelog = worker
    agent = runtime.app.agents["score_events"]
    async with agent.test_context() as ctx:
        await ctx.put(key=b"u1", value=event("u1", "view", 0))
        await ctx.put(key=b"u1", value=event("u1", "add_to_cart", 1))
        await ctx.put(key=b"u2", value=b"{broken")
        await ctx.put(key=b"u2", value=event("u2", "purchase", 2))
    bodies = [orjson.loads(m["value"]) for m in output.sent]
    assert [b["user_id"] for b in bodies] == ["u1", "u1", "u2"]
    assert bodies[1]["scores"]["cart_abandon"] is not None
    assert [dict(m["headers"])["dlq.reason"] for m in dlq.sent] == [b"invalid_json"]
    assert {key for _, key, _ in changelog} == {b"u1", b"u2"}
    assert runtime.user_states.get("u1") is not None
    assert metrics.registry.get_sample_value("propensity_propensities_published_total") == 3
    assert (
        metrics.registry.get_sample_value(
            "propensity_invalid_events_total", {"reason": "invalid_json"}
        )
        == 1
    )
