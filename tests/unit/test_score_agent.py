"""The scoring agent under Faust's test_context: no broker, memory store."""

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from model.serving.export import load_model
from streams.worker.metrics import WorkerMetrics
from streams.worker.service import build_worker
from streams.worker.settings import Settings

T0 = 1_700_000_000_000


class CapturingPublisher:
    """Stands in for the BatchPublisher, a seam we own: records what would be published."""

    def __init__(self) -> None:
        self.queued: list[dict[str, Any]] = []
        self.published: list[dict[str, Any]] = []

    async def prepare(self, topics: Any) -> None:
        return None

    def enqueue(
        self, topic: str, key: Any, value: Any, *, partition: Any = None, headers: Any = ()
    ) -> None:
        self.queued.append(
            {"topic": topic, "key": key, "value": value, "partition": partition, "headers": headers}
        )

    async def flush(self) -> int:
        self.published.extend(self.queued)
        count, self.queued = len(self.queued), []
        return count

    async def stop(self) -> None:
        return None

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [r for r in self.published if r["topic"] == topic]


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
    publisher = CapturingPublisher()
    runtime, _ = build_worker(settings, load_model(untrained_model), metrics, publisher=publisher)
    return runtime, settings, metrics, publisher


async def until(condition: Any, timeout: float = 20.0) -> None:
    """Wait for the agent to get somewhere (a sync point, not a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the agent never got there"
        await asyncio.sleep(0.01)


def event(user: str, kind: str, step: int) -> bytes:
    return orjson.dumps(
        {"event_type": kind, "user_id": user, "item_id": "i1", "ts": T0 + step * 1000}
    )


async def test_agent_publishes_one_score_per_event_and_dead_letters_bad_input(worker: Any) -> None:
    runtime, settings, metrics, publisher = worker
    agent = runtime.app.agents["score_events"]
    async with agent.test_context() as ctx:
        await ctx.put(key=b"u1", value=event("u1", "view", 0))
        await ctx.put(key=b"u1", value=event("u1", "add_to_cart", 1))
        await ctx.put(key=b"u2", value=b"{broken")
        await ctx.put(key=b"u2", value=event("u2", "purchase", 2))
        # put() returns when the stream has the value, not when the batch is published.
        await until(
            lambda: (
                publisher.on(runtime.user_states.changelog_topic)
                and len(publisher.on(settings.output_topic)) == 3
                and len(publisher.on(settings.dlq_topic)) == 1
            )
        )
    bodies = [orjson.loads(r["value"]) for r in publisher.on(settings.output_topic)]
    assert [b["user_id"] for b in bodies] == ["u1", "u1", "u2"]
    assert bodies[1]["scores"]["cart_abandon"] is not None
    assert [dict(r["headers"])["dlq.reason"] for r in publisher.on(settings.dlq_topic)] == [
        b"invalid_json"
    ]
    changelog = publisher.on(runtime.user_states.changelog_topic)
    assert {r["key"] for r in changelog} == {b"u1", b"u2"}
    assert all(r["partition"] == 0 for r in changelog)
    assert publisher.queued == []  # everything was flushed before the events were acked
    assert runtime.user_states.get("u1") is not None
    assert metrics.registry.get_sample_value("propensity_propensities_published_total") == 3
    assert (
        metrics.registry.get_sample_value(
            "propensity_invalid_events_total", {"reason": "invalid_json"}
        )
        == 1
    )


class BrokenNetwork:
    """A model fault (not the input's): every scoring call raises."""

    def run(self, *args: Any) -> Any:
        raise RuntimeError("weights on fire")


async def test_a_scoring_fault_calls_the_fatal_handler_and_publishes_nothing(
    untrained_model: Path, tmp_path: Path
) -> None:
    settings = Settings(
        app_id="agent-fatal", model_path=untrained_model, data_dir=tmp_path, partitions=1
    )
    publisher = CapturingPublisher()
    faults: list[BaseException] = []
    runtime, handler = build_worker(
        settings,
        load_model(untrained_model),
        WorkerMetrics(),
        publisher=publisher,
        on_fatal=faults.append,
    )
    handler.scorer.module = BrokenNetwork()
    agent = runtime.app.agents["score_events"]
    async with agent.test_context() as ctx:
        await ctx.put(key=b"u1", value=event("u1", "view", 0))
        await ctx.put(key=b"u1", value=b"{broken")
        await until(lambda: faults)
    assert [type(f) for f in faults] == [RuntimeError]
    assert publisher.published == []  # neither the propensity, nor the dead letter, nor a state
