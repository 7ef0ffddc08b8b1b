"""The alert rules, Prometheus config and dashboard queries through Debian's promtool."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import promql

promtool_required = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not on PATH"
)


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.prometheus
@promtool_required
def test_promtool_check_config() -> None:
    result = promtool("check", "config", promql.PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
@promtool_required
def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", promql.ALERTS_PATH)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
@promtool_required
def test_promtool_alert_unit_tests() -> None:
    result = promtool("test", "rules", promql.ALERTS_TEST_PATH)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
@promtool_required
def test_promtool_unit_tests_catch_a_broken_alert(tmp_path: Path) -> None:
    """The unit tests fail when an alert watches a metric the worker does not export."""
    broken = promql.ALERTS_PATH.read_text().replace(
        "propensity_model_loaded == 0", "propensity_model_ready == 0"
    )
    assert broken != promql.ALERTS_PATH.read_text()
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(promql.ALERTS_TEST_PATH, tmp_path / "alerts_test.yml")
    result = promtool("test", "rules", tmp_path / "alerts_test.yml")
    assert result.returncode != 0
    assert "PropensityModelNotLoaded" in result.stdout + result.stderr


@pytest.mark.prometheus
@promtool_required
def test_dashboard_expressions_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each (expanded) panel query as the expression of a recording rule."""
    rules = [
        {"record": f"dashboard_check:expr_{i}", "expr": expr}
        for i, (_, expr) in enumerate(promql.dashboard_expressions())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
