"""`propensity monitor --report` against the embedded broker: reads the outcomes topic to its
end, writes the tables and plots, and its figures are those of the records produced."""

import asyncio
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from model.monitoring.quality import LiveQuality, QualityLimits
from model.monitoring.quality_report import AUC_PLOT, RELIABILITY_PLOT, format_figure
from streams.cli import main
from streams.worker.admin import ensure_topics
from streams.worker.settings import Settings
from tests.kafka_helpers import produce
from tests.unit.test_live_quality import random_records


def test_report_reads_the_topic_to_its_end(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    topic = f"{unique_name}.outcomes"
    ensure_topics(Settings(bootstrap_servers=kafka_bootstrap, partitions=3), [topic])
    records = random_records(1500, seed=11) + random_records(200, seed=12, version="v2")
    sent = [(topic, r["user_id"].encode(), orjson.dumps(r)) for r in records]
    sent += [(topic, b"u0", orjson.dumps(records[0])), (topic, b"u0", b"not json")]
    asyncio.run(produce(kafka_bootstrap, sent))

    out = tmp_path / "report"
    result = CliRunner().invoke(
        main,
        ["monitor", "-b", kafka_bootstrap, "--outcomes-topic", topic, "--report", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert f"read {len(sent):,} records (1,700 outcomes counted)" in result.output
    readme = (out / "README.md").read_text()
    assert "skipped: 1 duplicate, 1 not_json" in readme
    # The event-time window holds every outcome whatever the read order: same figures.
    expected = LiveQuality(QualityLimits())
    for r in records:
        expected.add(r)
    for f in expected.figures():
        if f.window == "24h":
            cells = " | ".join(
                format_figure(n, getattr(f.figures, n)) for n in ("outcomes", "roc_auc", "pr_auc")
            )
            assert f"| {f.head} | 24h | {cells} |" in readme, (f.model_version, f.head)
    assert "## Model `v1`" in readme and "## Model `v2`" in readme
    assert (out / AUC_PLOT).stat().st_size > 0 and (out / RELIABILITY_PLOT).stat().st_size > 0


def test_monitor_says_when_the_topic_does_not_exist(kafka_bootstrap: str, unique_name: str) -> None:
    result = CliRunner().invoke(
        main,
        [
            "monitor",
            "-b",
            kafka_bootstrap,
            "--outcomes-topic",
            f"{unique_name}.none",
            "--report",
            "x",
        ],
    )
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output
