"""The deploy/ folder: compose stack, image, dashboard and alert rules agree with the code."""

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import dockerfile
import pytest
import yaml
from prometheus_client import generate_latest, start_http_server

from model.monitoring.figures import QualityFigures
from model.serving.config import DEFAULT_HORIZON_MS
from streams.worker.metrics import WorkerMetrics
from streams.worker.settings import Settings, settings_table
from tests import promql

DEPLOY = promql.REPO_ROOT / "deploy"
COMPOSE_PATH = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
README = DEPLOY / "README.md"
SETTING_ENV_NAMES = {env for _, env, _, _ in settings_table()}


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(COMPOSE_PATH)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


@pytest.fixture(scope="module")
def worker_env(services: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in services["worker"]["environment"].items()}


@pytest.fixture(scope="module")
def known_metrics() -> set[str]:
    return promql.exported_metric_names()


def unknown_metrics(expr: str, known: set[str]) -> set[str]:
    return promql.metric_names(expr) - known


def container_port(mapping: str) -> int:
    """'127.0.0.1:9464:9464' or '9464:9464' or '9464' -> the container side, 9464."""
    return int(mapping.split("/")[0].rsplit(":", 1)[-1])


# --- compose -----------------------------------------------------------------------------


def test_compose_has_the_stack(services: dict[str, Any]) -> None:
    assert {"kafka", "topic-init", "worker", "prometheus", "grafana"} <= set(services)


def test_every_image_is_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if "image" not in service:
            assert "build" in service, f"{name} has neither image nor build"
            continue
        image = service["image"]
        assert "@sha256:" in image or re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: {image}"
        tag = image.rsplit(":", 1)[1]
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image} is not a version"


def test_dockerfile_base_image_is_pinned() -> None:
    bases = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert bases
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim[\w.-]*", base), base


def test_worker_environment_uses_only_setting_names(worker_env: dict[str, str]) -> None:
    assert set(worker_env) <= SETTING_ENV_NAMES, set(worker_env) - SETTING_ENV_NAMES


def test_worker_environment_parses_into_settings(worker_env: dict[str, str]) -> None:
    settings = Settings.from_env(worker_env)
    assert str(settings.model_path) == "/models/model.pt"
    assert settings.bootstrap_servers == "kafka:9092"


def test_dockerfile_env_uses_only_setting_names() -> None:
    text = DOCKERFILE.read_text()
    names = set(re.findall(r"\b((?:PROPENSITY|KAFKA)_[A-Z0-9_]+)=", text))
    assert names, "the Dockerfile sets no PROPENSITY_* defaults"
    assert names <= SETTING_ENV_NAMES, names - SETTING_ENV_NAMES


def test_topic_init_creates_every_topic_the_worker_uses(
    services: dict[str, Any], worker_env: dict[str, str]
) -> None:
    settings = Settings.from_env(worker_env)
    script = "\n".join(services["topic-init"]["command"])
    loop = re.search(r"for topic in ([^;]+);", script)
    assert loop, script
    created = set(loop.group(1).split())
    assert {*settings.input_topics, settings.output_topic, settings.dlq_topic} <= created
    assert f"--partitions {settings.partitions}" in script


def test_worker_waits_for_kafka_and_topics(services: dict[str, Any]) -> None:
    depends = services["worker"]["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["topic-init"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in services["kafka"]
    assert services["topic-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_worker_builds_from_the_deploy_dockerfile(services: dict[str, Any]) -> None:
    build = services["worker"]["build"]
    assert (COMPOSE_PATH.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def test_published_ports(services: dict[str, Any], worker_env: dict[str, str]) -> None:
    def ports(name: str) -> set[int]:
        return {container_port(p) for p in services[name].get("ports", [])}

    assert int(worker_env["PROPENSITY_METRICS_PORT"]) in ports("worker")
    assert 9090 in ports("prometheus")
    assert 3000 in ports("grafana")


def test_prometheus_scrapes_the_worker_metrics_port(worker_env: dict[str, str]) -> None:
    config = load_yaml(promql.PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["propensity-worker"]["static_configs"] for t in sc["targets"]]
    assert targets == [f"worker:{worker_env['PROPENSITY_METRICS_PORT']}"]
    assert jobs["propensity-worker"].get("metrics_path", "/metrics") == "/metrics"


def test_volumes(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    named_used, bind_sources = set(), []
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                bind_sources.append(source)
            else:
                named_used.add(source)
    assert named_used == declared
    # Where state lives: broker log, worker tables, TSDB, Grafana's database.
    for name in ("kafka", "worker", "prometheus", "grafana"):
        assert any(v.split(":")[0] in declared for v in services[name]["volumes"]), name
    # Every bind-mounted config exists; the model folder is made by `propensity train`.
    for source in bind_sources:
        if source != "../artifacts":
            assert (COMPOSE_PATH.parent / source).exists(), source


def test_prometheus_mounts_its_config_and_rules(services: dict[str, Any]) -> None:
    mounts = {v.split(":")[0]: v.split(":")[1] for v in services["prometheus"]["volumes"]}
    assert mounts["./prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    rule_files = load_yaml(promql.PROMETHEUS_CONFIG)["rule_files"]
    for rule_file in rule_files:
        assert f"/etc/prometheus/{rule_file}" in mounts.values(), rule_file


def test_grafana_provisioning_matches_the_mounts(services: dict[str, Any]) -> None:
    mounts = {v.split(":")[0]: v.split(":")[1] for v in services["grafana"]["volumes"]}
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert [d["uid"] for d in datasources] == ["prometheus"]
    assert datasources[0]["url"] == "http://prometheus:9090"
    providers = load_yaml(provisioning / "dashboards" / "dashboards.yml")["providers"]
    assert [p["options"]["path"] for p in providers] == [mounts["./grafana/dashboards"]]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


# --- kubernetes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    """kind/name -> manifest, from every document of every file in deploy/k8s."""
    found = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        with path.open(encoding="utf-8") as f:
            for document in yaml.safe_load_all(f):
                found[f"{document['kind']}/{document['metadata']['name']}"] = document
    return found


def test_k8s_configmap_holds_only_settings(k8s: dict[str, dict[str, Any]]) -> None:
    data = k8s["ConfigMap/propensity-worker"]["data"]
    assert set(data) <= SETTING_ENV_NAMES, set(data) - SETTING_ENV_NAMES
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap data must be strings"
    assert str(Settings.from_env(data).model_path) == "/models/model.pt"


def test_k8s_deployment(k8s: dict[str, dict[str, Any]]) -> None:
    pod = k8s["Deployment/propensity-worker"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["propensity", "worker"]
    assert container["image"].rsplit(":", 1)[1] not in {"", "latest"}
    assert {"configMapRef": {"name": "propensity-worker"}} in container["envFrom"]
    (instance_id,) = [e for e in container["env"] if e["name"] == "PROPENSITY_GROUP_INSTANCE_ID"]
    assert instance_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert {e["name"] for e in container["env"]} <= {env for _, env, _, _ in settings_table()}
    metrics_port = int(k8s["ConfigMap/propensity-worker"]["data"]["PROPENSITY_METRICS_PORT"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == metrics_port
    assert container["readinessProbe"]["exec"]["command"] == ["propensity-healthcheck"]
    # The Dockerfile's user; mounts where the image expects the model and its data.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert f"--uid {pod['securityContext']['runAsUser']} " in DOCKERFILE.read_text()
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/models", "/var/lib/propensity"} <= mounts
    service = k8s["Service/propensity-worker"]["spec"]
    assert {p["targetPort"] for p in service["ports"]} <= set(ports)
    assert service["selector"].items() <= pod_labels(k8s).items()


def pod_labels(k8s: dict[str, dict[str, Any]]) -> dict[str, str]:
    labels: dict[str, str] = k8s["Deployment/propensity-worker"]["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


# --- image ---------------------------------------------------------------------------------


# The ENV keys the image sets, in both ENV instructions: build-time Python/pip behaviour and
# the worker's container defaults.
IMAGE_ENV_KEYS = {
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PROPENSITY_MODEL_PATH",
    "PROPENSITY_DATA_DIR",
    "PROPENSITY_METRICS_HOST",
    "PROPENSITY_METRICS_PORT",
}
# An instruction keyword inside another instruction's value: a line continuation swallowed it.
SWALLOWED = re.compile(
    r"\s(FROM|RUN|CMD|LABEL|EXPOSE|ENV|ADD|COPY|ENTRYPOINT|VOLUME|USER|WORKDIR|ARG|ONBUILD"
    r"|STOPSIGNAL|HEALTHCHECK|SHELL|MAINTAINER)\s"
)


def dockerfile_problems(path: Path) -> list[str]:
    """What differs from the image we mean, as BuildKit's own parser reads the file."""
    try:
        commands = dockerfile.parse_file(str(path))
    except dockerfile.GoParseError as exc:
        return [f"BuildKit cannot parse it: {exc}"]
    problems = []
    names = [c.cmd.upper() for c in commands]
    if names[:1] != ["FROM"]:
        problems.append(f"does not start with FROM: {names[:1]}")
    if names[-2:] != ["HEALTHCHECK", "CMD"]:
        problems.append(f"does not end with HEALTHCHECK, CMD: {names[-2:]}")
    env_keys = {key for c in commands if c.cmd.upper() == "ENV" for key in c.value[::2]}
    if env_keys != IMAGE_ENV_KEYS:
        problems.append(f"ENV keys differ: {sorted(env_keys ^ IMAGE_ENV_KEYS)}")
    users = [c.value for c in commands if c.cmd.upper() == "USER"]
    if users[-1:] != [("propensity",)]:
        problems.append(f"the last USER instruction is not USER propensity: {users}")
    for c in commands:
        swallowed = SWALLOWED.search(" ".join(c.value))
        if swallowed:
            problems.append(f"line {c.start_line}: {c.cmd} swallowed {swallowed.group(1)!r}")
    return problems


def test_dockerfile_instructions_are_what_we_mean() -> None:
    assert dockerfile_problems(DOCKERFILE) == []


@pytest.mark.parametrize(
    ("line", "flagged"),
    [
        # The original bug: ENV's last pair continued into `USER propensity`.
        ("    PROPENSITY_METRICS_PORT=9464\n", "USER"),
        # A RUN continued over the comment and blank lines swallows the whole ENV instruction.
        (" && chown propensity:propensity /models\n", "ENV"),
    ],
)
def test_the_instruction_check_flags_a_swallowing_continuation(
    tmp_path: Path, line: str, flagged: str
) -> None:
    text = DOCKERFILE.read_text()
    assert line in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(line, line[:-1] + " \\\n"))
    problems = dockerfile_problems(broken)
    assert problems and any(flagged in problem for problem in problems), problems


def test_dockerfile_essentials() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"download\.pytorch\.org/whl/cpu\S*\s+\"?torch==\$\{TORCH_VERSION\}", text)
    assert re.search(r"^ARG TORCH_VERSION=\d+\.\d+\.\d+$", text, flags=re.MULTILINE)
    assert re.search(r"^HEALTHCHECK ", text, flags=re.MULTILINE)
    assert 'CMD ["propensity", "worker"]' in text


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", DEPLOY / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_reads_the_ready_gauge() -> None:
    healthcheck = load_healthcheck()
    metrics = WorkerMetrics()
    assert not healthcheck.is_ready(generate_latest(metrics.registry).decode())
    metrics.ready.set(1)
    assert healthcheck.is_ready(generate_latest(metrics.registry).decode())


def test_healthcheck_against_a_metrics_server(monkeypatch: pytest.MonkeyPatch) -> None:
    healthcheck = load_healthcheck()
    metrics = WorkerMetrics()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        monkeypatch.setenv("PROPENSITY_METRICS_PORT", str(server.server_port))
        assert healthcheck.main() == 1
        metrics.ready.set(1)
        assert healthcheck.main() == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert healthcheck.main() == 1  # nothing listens any more


# --- dashboard -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboards() -> list[dict[str, Any]]:
    files = promql.dashboard_files()
    assert files, "no provisioned dashboards"
    return [promql.load_dashboard(path) for path in files]


def test_dashboard_uids_are_fixed_and_unique(dashboards: list[dict[str, Any]]) -> None:
    uids = [d.get("uid") for d in dashboards]
    assert all(uids) and len(set(uids)) == len(uids)
    assert "propensity-worker" in uids


def test_panel_ids_are_unique(dashboards: list[dict[str, Any]]) -> None:
    for dashboard in dashboards:
        ids = [p["id"] for p in promql.iter_panels(dashboard["panels"])]
        assert len(set(ids)) == len(ids), dashboard["uid"]


def test_every_panel_queries_the_provisioned_prometheus(dashboards: list[dict[str, Any]]) -> None:
    for dashboard in dashboards:
        for panel in promql.iter_panels(dashboard["panels"]):
            if panel["type"] == "row":
                continue
            where = f"{dashboard['uid']} panel {panel['title']!r}"
            assert panel.get("targets"), f"{where} has no target"
            assert panel["datasource"]["uid"] == "prometheus", where
            for target in panel["targets"]:
                assert target.get("expr"), where
                assert target["datasource"]["uid"] == "prometheus", where


def test_dashboard_expressions_use_only_exported_metrics(known_metrics: set[str]) -> None:
    expressions = promql.dashboard_expressions()
    assert expressions
    bad = {where: unknown_metrics(expr, known_metrics) for where, expr in expressions}
    assert not {w: m for w, m in bad.items() if m}


def test_dashboard_variables_use_only_exported_metrics(
    dashboards: list[dict[str, Any]], known_metrics: set[str]
) -> None:
    for dashboard in dashboards:
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            selector = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)
            assert selector, query
            assert selector.group(1) in known_metrics, query


def test_dashboard_covers_every_metric(known_metrics: set[str]) -> None:
    used = set().union(*(promql.metric_names(e) for _, e in promql.dashboard_expressions()))
    # Each family shown at least once (histograms through _bucket or _sum/_count).
    families = {re.sub(r"_(total|bucket|sum|count|info)$", "", n) for n in known_metrics}
    shown = {re.sub(r"_(total|bucket|sum|count|info)$", "", n) for n in used}
    assert families - shown == set()


def test_expanded_expressions_have_no_grafana_variables() -> None:
    for where, expr in promql.all_expressions():
        assert "$" not in expr, where


# --- alert rules ---------------------------------------------------------------------------


def test_alerts_are_labelled_and_explained() -> None:
    rules = promql.alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def test_alert_expressions_use_only_exported_metrics(known_metrics: set[str]) -> None:
    bad = {
        where: unknown_metrics(expr, known_metrics) for where, expr in promql.alert_expressions()
    }
    assert not {w: m for w, m in bad.items() if m}


def test_the_metric_check_catches_a_misspelled_metric(known_metrics: set[str]) -> None:
    expr = 'sum by (topic) (rate(propensity_events_consumd_total{job="x"}[5m])) > bool 0'
    assert unknown_metrics(expr, known_metrics) == {"propensity_events_consumd_total"}
    assert unknown_metrics("propensity_worker_up_total == 0", known_metrics) == {
        "propensity_worker_up_total"
    }


def test_metric_names_skips_functions_labels_and_durations() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, head)"
        ' (rate(propensity_score_bucket{head=~"a|b"}[5m]))) > 1e3'
        ' and on () sum(up{job="w"} offset 5m) > 0 unless absent(propensity_model_info)'
    )
    assert promql.metric_names(expr) == {"propensity_score_bucket", "up", "propensity_model_info"}


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    cases = [
        case
        for test in load_yaml(promql.ALERTS_TEST_PATH)["tests"]
        for case in test["alert_rule_test"]
    ]
    for rule in promql.alert_rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c.get("exp_alerts") for c in mine), f"{rule['alert']} never fires in a test"
        assert any(not c.get("exp_alerts") for c in mine), (
            f"{rule['alert']} is never silent in a test"
        )


def test_readme_explains_every_alert() -> None:
    text = README.read_text()
    for rule in promql.alert_rules():
        assert rule["alert"] in text, rule["alert"]


# --- promtool ------------------------------------------------------------------------------


# --- model quality -------------------------------------------------------------------------

# Every worker reads the whole outcomes topic and serves the same artifact: these figures are
# the same on every worker, so a panel or rule takes their max (a sum would grow with workers).
SAME_ON_EVERY_WORKER = re.compile(r"propensity_live_\w+|propensity_model_reference")
# Each worker's share of the outcome join: summed over workers.
PER_WORKER_SHARE = re.compile(
    r"propensity_outcome_pending(?:_bytes)?\b|propensity_outcomes_published_total"
    r"|propensity_outcome_evicted_total|propensity_outcome_skipped_total"
)
# The monitoring metrics: the "Model quality" row shows each of them.
MONITORING_METRICS = {
    *(f"propensity_live_{name}" for name in QualityFigures.names()),
    "propensity_model_reference",
    "propensity_score_psi",
    "propensity_event_mix_psi",
    "propensity_drift_window_events",
    "propensity_drift_psi_threshold",
    "propensity_outcomes_published_total",
    "propensity_outcome_pending",
    "propensity_outcome_pending_bytes",
    "propensity_outcome_evicted_total",
    "propensity_outcome_skipped_total",
    "propensity_outcome_watermark_lag_seconds",
    # Not in the contract: the live-quality service's own counters on the quality branch.
    "propensity_live_quality_skipped_total",
    "propensity_live_quality_cap_drops_total",
    "propensity_live_quality_compute_seconds",
}
# The actions' metrics (issue 12): the "Actions" row shows each of them. Uplift figures are
# global (every worker reads the whole action-outcomes topic): maxed over workers. Decisions,
# suppressions, pending triggers, state and webhook requests are each worker's share: summed.
ACTIONS_SAME_ON_EVERY_WORKER = re.compile(r"propensity_uplift_\w+")
ACTIONS_PER_WORKER_SHARE = re.compile(
    r"propensity_actions_(?:decided|suppressed)_total|propensity_action_pending_triggers\b"
    r"|propensity_action_state_bytes\b|propensity_action_webhook_requests_total"
)
ACTIONS_METRICS = {
    "propensity_uplift_skipped_total",
    "propensity_actions_decided_total",
    "propensity_actions_suppressed_total",
    "propensity_action_pending_triggers",
    "propensity_action_state_bytes",
    "propensity_action_webhook_requests_total",
    *(
        f"propensity_uplift_{name}"
        for name in (
            "users",
            "conversions",
            "conversion_rate",
            "absolute",
            "ci_low",
            "ci_high",
            "incremental_purchases",
        )
    ),
}
SUPPRESSION_REASONS = {"cooldown", "daily_cap", "quiet_hours", "lower_priority"}
DURATION_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def aggregations_of(pattern: re.Pattern[str]) -> dict[str, set[str | None]]:
    """Where each metric matching ``pattern`` appears -> the aggregations around it."""
    found: dict[str, set[str | None]] = {}
    for where, expr in promql.all_expressions():
        for match in pattern.finditer(expr):
            found.setdefault(where, set()).add(promql.enclosing_aggregation(expr, match.start()))
    return found


def test_enclosing_aggregation() -> None:
    expr = (
        'abs(max by (head, model_version) (a{window="count"} * (1 - b))) > 0.05'
        " and on () sum by (reason) (rate(c[5m])) or max(d) or e"
    )
    assert promql.enclosing_aggregation(expr, expr.index("a{")) == "max"
    assert promql.enclosing_aggregation(expr, expr.index("b)")) == "max"
    assert promql.enclosing_aggregation(expr, expr.index("c[")) == "sum"
    assert promql.enclosing_aggregation(expr, expr.index("d)")) == "max"
    assert promql.enclosing_aggregation(expr, expr.index("e")) is None
    assert promql.enclosing_aggregation('max(x{a="sum("})', 4) == "max"


def test_figures_every_worker_exports_alike_are_maxed_over_workers() -> None:
    found = aggregations_of(SAME_ON_EVERY_WORKER)
    assert len(found) >= 10, found
    assert {where: aggs for where, aggs in found.items() if aggs != {"max"}} == {}


def test_per_worker_shares_of_the_outcome_join_are_summed() -> None:
    found = aggregations_of(PER_WORKER_SHARE)
    assert len(found) >= 5, found
    assert {where: aggs for where, aggs in found.items() if aggs != {"sum"}} == {}


def test_the_aggregation_check_catches_a_sum_of_global_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summed = "sum by (head) (propensity_live_roc_auc)"
    monkeypatch.setattr(promql, "all_expressions", lambda: [("panel X", summed)])
    assert aggregations_of(SAME_ON_EVERY_WORKER) == {"panel X": {"sum"}}


def test_uplift_figures_are_maxed_over_workers() -> None:
    found = aggregations_of(ACTIONS_SAME_ON_EVERY_WORKER)
    assert len(found) >= 6, found
    assert {where: aggs for where, aggs in found.items() if aggs != {"max"}} == {}


def test_per_worker_shares_of_the_actions_are_summed() -> None:
    found = aggregations_of(ACTIONS_PER_WORKER_SHARE)
    assert len(found) >= 7, found
    assert {where: aggs for where, aggs in found.items() if aggs != {"sum"}} == {}


def model_quality_row(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return row_panels(dashboard, "Model quality")


def row_panels(dashboard: dict[str, Any], title: str) -> list[dict[str, Any]]:
    """The panels from the row named ``title`` to the next row."""
    panels = dashboard["panels"]
    (start,) = [i for i, p in enumerate(panels) if p["title"] == title]
    assert panels[start]["type"] == "row"
    end = next((i for i in range(start + 1, len(panels)) if panels[i]["type"] == "row"), None)
    return panels[start + 1 : end]


def test_model_quality_row_shows_every_monitoring_metric(
    dashboards: list[dict[str, Any]],
) -> None:
    (dashboard,) = [d for d in dashboards if d["uid"] == "propensity-worker"]
    panels = model_quality_row(dashboard)
    shown = {
        name
        for panel in panels
        for target in panel["targets"]
        for name in promql.metric_names(target["expr"])
    }
    assert MONITORING_METRICS - shown == set()
    assert shown - MONITORING_METRICS == set()  # the row shows monitoring only
    # The live ROC-AUC panel compares with the artifact's own test ROC-AUC.
    (auc,) = [p for p in panels if p["title"] == "Live ROC-AUC vs test ROC-AUC"]
    assert any('split="test", metric="roc_auc"' in t["expr"] for t in auc["targets"])


def test_actions_row_shows_every_actions_metric(dashboards: list[dict[str, Any]]) -> None:
    (dashboard,) = [d for d in dashboards if d["uid"] == "propensity-worker"]
    panels = row_panels(dashboard, "Actions")
    shown = {
        name
        for panel in panels
        for target in panel["targets"]
        for name in promql.metric_names(target["expr"])
    }
    assert ACTIONS_METRICS - shown == set()
    assert shown - ACTIONS_METRICS == set()  # the row shows actions only
    # Decisions are split by assignment, suppressions by the contract's reasons; the uplift
    # panel draws the interval around the estimate.
    exprs = {panel["title"]: [t["expr"] for t in panel["targets"]] for panel in panels}
    assert any("by (action, assignment)" in e for e in exprs["Decisions per action"])
    assert any("by (action, reason)" in e for e in exprs["Suppressed decisions by reason"])
    uplift = " ".join(exprs["Absolute uplift with 95% CI"])
    assert all(f"propensity_uplift_{name}" in uplift for name in ("absolute", "ci_low", "ci_high"))


def test_actions_alerts_watch_the_contract_labels() -> None:
    """The rules select label values of the contract: a typo there would make them silent."""
    rules = {rule["alert"]: rule["expr"] for rule in promql.alert_rules()}
    webhook = rules["PropensityWebhookFailing"]
    assert set(re.findall(r'outcome=~?"([^"]+)"', webhook)) == {"failed", "ok|failed"}
    quiet = re.findall(r'reason="(\w+)"', rules["PropensityActionsStopped"])
    assert set(quiet) <= SUPPRESSION_REASONS and quiet
    uplift = set(re.findall(r'assignment="(\w+)"', rules["PropensityNegativeUplift"]))
    assert uplift == {"treatment", "control"}


def test_panels_do_not_overlap(dashboards: list[dict[str, Any]]) -> None:
    (dashboard,) = [d for d in dashboards if d["uid"] == "propensity-worker"]
    cells: dict[tuple[int, int], str] = {}
    for panel in promql.iter_panels(dashboard["panels"]):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]


def test_outcome_stall_rule_looks_back_one_model_horizon() -> None:
    """Predictions are due one horizon after their event: the rule's offset is the horizon."""
    (rule,) = [r for r in promql.alert_rules() if r["alert"] == "PropensityOutcomeStreamStalled"]
    (offset,) = re.findall(r"\boffset (\d+)([smhdw])\b", rule["expr"])
    assert int(offset[0]) * DURATION_MS[offset[1]] == DEFAULT_HORIZON_MS
    assert f"offset {''.join(offset)}" in rule["annotations"]["description"]
