"""A real Prometheus scrapes a real worker: every dashboard and alert expression has data."""

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from model.monitoring.figures import QualityFigures
from streams.harness.broker import free_port
from streams.worker.admin import ensure_topics, service_topics
from tests.kafka_helpers import produce, start_worker, worker_settings
from tests.promql import alert_expressions, all_expressions, dashboard_expressions, metric_names

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

REPO = Path(__file__).resolve().parents[2]
T0 = int(time.time() * 1000) - 60_000
# Series this short run may lack: live figures need outcomes resolved and read back from the
# outcomes topic, reference figures and PSI an artifact with reference distributions (the
# untrained model has none) and a full drift window, skips a bad propensity or outcome record.
# The actions' metrics need a policy file (this run has none) and, for the uplift, resolved
# action outcomes. Queries of only these may come back empty; they must still be valid.
NOT_IN_A_SHORT_RUN = {
    *(f"propensity_live_{name}" for name in QualityFigures.names()),
    "propensity_model_reference",
    "propensity_score_psi",
    "propensity_event_mix_psi",
    "propensity_drift_window_events",
    "propensity_outcome_skipped_total",
    "propensity_live_quality_skipped_total",
    "propensity_actions_decided_total",
    "propensity_actions_suppressed_total",
    "propensity_action_pending_triggers",
    "propensity_action_state_bytes",
    "propensity_action_webhook_requests_total",
    "propensity_uplift_users",
    "propensity_uplift_conversions",
    "propensity_uplift_conversion_rate",
    "propensity_uplift_absolute",
    "propensity_uplift_ci_low",
    "propensity_uplift_ci_high",
    "propensity_uplift_incremental_purchases",
    "propensity_uplift_skipped_total",
}


def query(port: int, expr: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.loads(response.read()))


def api(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return dict(json.loads(response.read()))


def prometheus_config(tmp: Path, metrics_port: int) -> Path:
    rules = tmp / "alerts.yml"
    shutil.copy(REPO / "deploy" / "prometheus" / "alerts.yml", rules)
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files: ['{rules}']\n"
        "scrape_configs:\n"
        "  - job_name: propensity-worker\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    return config


def events(topic: str, n: int) -> list[tuple[str, bytes | None, bytes]]:
    out: list[tuple[str, bytes | None, bytes]] = []
    kinds = ["view", "view", "add_to_cart", "view", "purchase"]
    for i in range(n):
        user = f"user-{i % 17}"
        body = {
            "event_type": kinds[i % 5],
            "user_id": user,
            "item_id": str(i % 9),
            "ts": T0 + i * 100,
        }
        out.append((topic, user.encode(), orjson.dumps(body)))
    out.append((topic, b"user-1", b"{not json"))
    return out


@pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="Debian's prometheus is not installed"
)
def test_every_dashboard_and_alert_expression_has_data(
    kafka_bootstrap: str, untrained_model: Path, tmp_path: Path, unique_name: str
) -> None:
    settings = worker_settings(unique_name, kafka_bootstrap, untrained_model, tmp_path)
    ensure_topics(settings, service_topics(settings))
    worker = start_worker(settings, tmp_path / "worker.log")
    prom_port = free_port()
    prometheus = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={prometheus_config(tmp_path, settings.metrics_port)}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        worker.wait_ready()
        records = events(settings.input_topics[0], 200)
        # Two waves, some seconds apart, so rate() windows see increases.
        asyncio.run(produce(kafka_bootstrap, records[:100]))
        time.sleep(4)
        asyncio.run(produce(kafka_bootstrap, records[100:]))
        time.sleep(6)
        assert len(dashboard_expressions()) >= 20 and len(alert_expressions()) >= 6
        used = set().union(*(metric_names(e) for _, e in all_expressions()))
        assert used >= NOT_IN_A_SHORT_RUN, NOT_IN_A_SHORT_RUN - used  # no stale exemption
        empty = []
        for where, expr in dashboard_expressions():
            result = query(prom_port, expr)
            assert result["status"] == "success", (where, expr, result)
            if not result["data"]["result"] and not metric_names(expr) <= NOT_IN_A_SHORT_RUN:
                empty.append((where, expr))
        assert not empty, f"dashboard expressions without data: {empty}"

        for where, expr in alert_expressions():
            result = query(prom_port, expr)
            assert result["status"] == "success", (where, expr, result)
            for name in metric_names(expr) - NOT_IN_A_SHORT_RUN:
                found = query(prom_port, name)["data"]["result"]
                assert found, f"{where}: metric {name} of `{expr}` has no series"

        groups = api(prom_port, "/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) == len(alert_expressions())
        assert all(rule["health"] == "ok" for rule in rules), [
            r for r in rules if r["health"] != "ok"
        ]
    finally:
        prometheus.terminate()
        prometheus.wait(20)
        worker.stop()
