"""Every PromQL expression the deployment ships: Grafana panel targets and alert rules.

Dashboard expressions come back with Grafana's variables expanded ($__rate_interval and
friends to fixed ranges, template variables to their "All" value), so each can be sent to
Prometheus as it is.
"""

import json
import re
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = REPO_ROOT / "deploy" / "grafana" / "dashboards"
ALERTS_PATH = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST_PATH = REPO_ROOT / "deploy" / "prometheus" / "alerts_test.yml"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"

# What Grafana would put in for a short time range with a 15 s scrape interval.
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}
ALL_VALUE = ".+"

_VARIABLE = re.compile(r"\$\{([a-zA-Z_]\w*)(?::\w+)?\}|\$([a-zA-Z_]\w*)")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:$])([a-zA-Z_:][\w:]*)(\s*\()?")
_BINARY_KEYWORDS = {"and", "or", "unless", "bool", "offset"}
_GROUPING_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = frozenset({*_BINARY_KEYWORDS, *_GROUPING_KEYWORDS, "inf", "nan"})
# Aggregation operators; functions such as rate() or abs() are looked through.
_AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "count", "stddev", "stdvar", "group"})


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        dashboard: dict[str, Any] = json.load(f)
    return dashboard


def iter_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel, including those nested inside (collapsed) rows."""
    out: list[dict[str, Any]] = []
    for panel in panels:
        out.append(panel)
        out.extend(iter_panels(panel.get("panels", [])))
    return out


def expand_grafana_variables(expr: str, dashboard: dict[str, Any]) -> str:
    """Replace $__builtins with fixed ranges and template variables with their All value."""
    all_values = {
        v["name"]: v.get("allValue") or ALL_VALUE
        for v in dashboard.get("templating", {}).get("list", [])
    }

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        if name in all_values:
            return all_values[name]
        raise ValueError(f"unknown Grafana variable ${name} in {expr!r}")

    return _VARIABLE.sub(substitute, expr)


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, expression) for every target of every panel of every provisioned dashboard."""
    found = []
    for path in dashboard_files():
        dashboard = load_dashboard(path)
        for panel in iter_panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                where = (
                    f"{path.name} panel {panel.get('id')} {panel.get('title')!r} "
                    f"target {target.get('refId')}"
                )
                found.append((where, expand_grafana_variables(target["expr"], dashboard)))
    return found


def alert_rules() -> list[dict[str, Any]]:
    with ALERTS_PATH.open(encoding="utf-8") as f:
        document = yaml.safe_load(f)
    return [rule for group in document["groups"] for rule in group["rules"]]


def alert_expressions() -> list[tuple[str, str]]:
    """(where, expression) for every rule in alerts.yml.

    An alert expression returns data only while its alert condition holds; to check that its
    inputs exist on a healthy system, query the series named by metric_names(expr).
    """
    return [
        (f"alerts.yml {rule.get('alert') or rule.get('record')}", rule["expr"].strip())
        for rule in alert_rules()
    ]


def all_expressions() -> list[tuple[str, str]]:
    """(where, expression) for every dashboard target and every alert rule."""
    return dashboard_expressions() + alert_expressions()


def exported_metric_names() -> set[str]:
    """Sample names a WorkerMetrics registry can expose, plus Prometheus' own `up`."""
    from streams.worker.metrics import WorkerMetrics

    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "info": ("_info",),
        "gauge": ("",),
    }
    names = {"up"}
    for family in WorkerMetrics().registry.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (not functions, keywords, labels or durations).

    A light lexer, not a parser: enough for the expressions this repository writes.
    """
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)  # label lists of by/on/group_left/...
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def enclosing_aggregation(expr: str, position: int) -> str | None:
    """The innermost aggregation operator whose argument holds ``expr[position]``."""
    text = _STRING.sub(lambda m: "_" * len(m.group()), expr)  # same length: positions hold
    depth = 0
    for i in range(position - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(" and depth:
            depth -= 1
        elif text[i] == "(":
            before = text[:i].rstrip()
            if before.endswith(")"):  # `max by (head) (`: skip the label list and `by`
                before = before[: before.rindex("(")].rstrip()
                before = re.sub(r"\b(by|without)$", "", before).rstrip()
            name = re.search(r"(\w*)$", before)
            if name and name.group(1) in _AGGREGATIONS:
                return name.group(1)
    return None
