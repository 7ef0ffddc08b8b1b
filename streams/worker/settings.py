"""The one settings object, read from environment variables (prefix PROPENSITY_)."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from model.serving.user_state import DEFAULT_USER_TTL_MS, DEFAULT_WINDOW_SIZE
from schemas.events import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_FUTURE_MS
from schemas.units import SECOND_MS

ENV_PREFIX = "PROPENSITY_"
# Chosen from `propensity bench-drift` (see the README, "Knowing the model still works").
DEFAULT_DRIFT_WINDOW_EVENTS = 5000
DEFAULT_DRIFT_PSI_THRESHOLD = 0.1
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_name(name: str) -> str:
    """The environment variable of setting ``name``."""
    return "KAFKA_BOOTSTRAP_SERVERS" if name == "bootstrap_servers" else ENV_PREFIX + name.upper()


def _setting(default: Any, help: str, *, secret: bool = False) -> Any:
    # Secrets stay out of repr(), so a logged or printed Settings never shows them.
    return field(default=default, metadata={"help": help}, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """Every runtime setting. Build once with Settings.from_env() and pass it down."""

    bootstrap_servers: str = _setting(
        "",
        "Kafka bootstrap servers (host:port,...). Empty: `demo` starts the embedded broker;"
        " other commands use localhost:9092.",
    )
    security_protocol: str = _setting(
        "PLAINTEXT",
        "How every Kafka client connects: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    ssl_cafile: str = _setting(
        "",
        "CA bundle (PEM) that verifies the brokers' certificates with SSL or SASL_SSL"
        " (empty: the system's CAs).",
    )
    ssl_certfile: str = _setting(
        "", "Client certificate (PEM) for TLS client authentication (empty: none)."
    )
    ssl_keyfile: str = _setting(
        "", "Private key (PEM) of the client certificate (empty: inside the certificate file)."
    )
    ssl_key_password: str = _setting(
        "", "Password of the client private key (empty: not encrypted).", secret=True
    )
    ssl_check_hostname: bool = _setting(
        True,
        "Check that the broker's certificate names the host connected to (false: only that a"
        " trusted CA signed it).",
    )
    sasl_mechanism: str = _setting(
        "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: PLAIN)."
    )
    sasl_username: str = _setting("", "SASL user name (required with SASL_PLAINTEXT or SASL_SSL).")
    sasl_password: str = _setting(
        "", "SASL password (required with SASL_PLAINTEXT or SASL_SSL).", secret=True
    )
    bootstrap_timeout_seconds: float = _setting(
        30.0,
        "How long the topic checks at start try to reach the bootstrap servers before the"
        " command gives up with an error.",
    )
    app_id: str = _setting("propensity", "Faust application id = consumer group and table prefix.")
    input_topics: tuple[str, ...] = _setting(
        ("clicks", "carts", "purchases"),
        "Comma-separated input topics; one combined topic also works.",
    )
    output_topic: str = _setting("propensities", "Topic the propensity events are published to.")
    dlq_topic: str = _setting("events.dlq", "Dead-letter topic for malformed input.")
    outcomes_topic: str = _setting(
        "outcomes",
        "Topic of the outcome records: each propensity joined with what the shopper did next.",
    )
    policy_path: str = _setting(
        "",
        "Marketing-action policy file (TOML, see deploy/policy.toml); empty: no actions are"
        " decided.",
    )
    actions_topic: str = _setting(
        "actions", "Topic of the action records (treatment and control decisions)."
    )
    action_dlq_topic: str = _setting(
        "actions.dlq",
        "Dead-letter topic of actions the webhook could not deliver (with status and attempts).",
    )
    webhook_url: str = _setting(
        "",
        "POST each treatment action here as JSON (Idempotency-Key: the action id); empty: no"
        " delivery, the actions topic is the interface.",
    )
    webhook_authorization: str = _setting(
        "", "Authorization header sent to the webhook (e.g. 'Bearer ...').", secret=True
    )
    webhook_timeout_seconds: float = _setting(5.0, "Timeout of one webhook request.")
    webhook_max_attempts: int = _setting(
        5,
        "Webhook attempts per action (429, 5xx, timeouts and connection errors are retried"
        " with exponential backoff and jitter, Retry-After honoured up to 30 s).",
    )
    webhook_rate_limit_per_second: float = _setting(
        50.0, "Most webhook requests per second (0: unlimited)."
    )
    uplift_window_hours: float = _setting(
        24.0 * 30,
        "How far back (by record time) the uplift service starts reading the action outcomes"
        " when a worker starts.",
    )
    action_outcomes_topic: str = _setting(
        "action-outcomes",
        "Topic of the action outcome records: each marketing action (treatment and control)"
        " joined with whether the shopper bought within the uplift horizon.",
    )
    partitions: int = _setting(8, "Partitions used when this service creates topics.")
    live_quality: bool = _setting(
        True,
        "Read the outcomes topic (all partitions, no consumer group) and export the model's"
        " live quality as the propensity_live_* gauges.",
    )
    quality_window_outcomes: int = _setting(
        10_000, "Live quality's count window: the last this many outcomes per model and head."
    )
    quality_window_hours: float = _setting(
        24.0,
        "Live quality's event-time window: outcomes within this many hours of the newest"
        ' event time seen for the model (the gauges\' window="24h" label whatever the value).',
    )
    quality_window_cap: int = _setting(
        1_000_000,
        "Most outcomes the event-time window holds per model and head (the oldest leave first,"
        " counted in propensity_live_quality_cap_drops_total): bounds memory, about 150 bytes"
        " an outcome.",
    )
    quality_interval_seconds: float = _setting(
        5.0,
        "Shortest time between two computations of the live-quality gauges (longer while one"
        " computation takes more than a quarter of it).",
    )
    model_path: Path = _setting(Path("artifacts/model.pt"), "TorchScript model artifact to serve.")
    model_sha256: str = _setting(
        "",
        "Content digest (SHA-256, printed by `propensity train`) the model must have;"
        " empty: not pinned.",
    )
    window_size: int = _setting(
        DEFAULT_WINDOW_SIZE, "Events kept per user in the rolling sequence table."
    )
    user_ttl_seconds: int = _setting(
        DEFAULT_USER_TTL_MS // SECOND_MS, "Users idle longer than this are forgotten."
    )
    max_event_bytes: int = _setting(
        DEFAULT_MAX_EVENT_BYTES, "Input messages larger than this go to the DLQ."
    )
    max_future_skew_seconds: int = _setting(
        DEFAULT_MAX_FUTURE_MS // 1000,
        "Events dated further than this ahead of the worker's clock go to the DLQ (bad_timestamp).",
    )
    batch_size: int = _setting(
        512, "Most records per fetch; fetched records form the micro-batches."
    )
    batch_wait_ms: int = _setting(5, "Longest wait to fill a micro-batch, in milliseconds.")
    torch_threads: int = _setting(1, "torch intra-op threads (1 keeps the event loop responsive).")
    metrics_host: str = _setting(
        "0.0.0.0",
        "Address the /metrics endpoint binds to (0.0.0.0, all interfaces, so that Prometheus"
        " reaches it in a container; 127.0.0.1 confines it to this host).",
    )
    metrics_port: int = _setting(9464, "Port of the /metrics endpoint (0 disables it).")
    data_dir: Path = _setting(Path("propensity-data"), "Faust data directory (table stores).")
    table_store: str = _setting("memory://", "Faust table store URL (memory:// or rocksdb://).")
    verify_changelog_end: bool = _setting(
        True,
        "Confirm each changelog partition's end offset with a fetch before table recovery"
        " (some brokers, the embedded Tansu among them, under-report it).",
    )
    drift_window_events: int = _setting(
        DEFAULT_DRIFT_WINDOW_EVENTS,
        "Scored events (per head: scores) in the sliding window whose PSI against the model's"
        " reference distributions is exported; 0 turns drift monitoring off. PSI is NaN until"
        " the window is full.",
    )
    drift_psi_threshold: float = _setting(
        DEFAULT_DRIFT_PSI_THRESHOLD,
        "PSI above which the drift alert fires (exported as propensity_drift_psi_threshold for"
        " the alert rule); chosen with `propensity bench-drift` for the default window.",
    )
    sweep_interval_seconds: float = _setting(60.0, "How often idle users are expired.")
    outcome_join: bool = _setting(
        True,
        "Join every propensity with what the shopper did next and publish outcome records"
        " (false: the worker only scores).",
    )
    outcome_allowed_lateness_seconds: int = _setting(
        60,
        "How far behind the newest event time of a partition an event may still arrive: the"
        " outcome join's watermark is that newest time minus this.",
    )
    outcome_max_pending_per_user: int = _setting(
        256,
        "Most predictions of one user waiting for their label; beyond it the oldest is dropped"
        " (counted in propensity_outcome_evicted_total).",
    )
    outcome_sweep_interval_seconds: float = _setting(
        1.0,
        "How often predictions whose horizon the watermark has closed are resolved negative.",
    )
    outcome_model_versions: tuple[str, ...] = _setting(
        (),
        "Model versions besides the served one whose propensities the outcome join accepts"
        " (e.g. the previous model during a roll-out); others are skipped as unknown_model.",
    )
    lag_interval_seconds: float = _setting(5.0, "How often consumer lag is measured.")
    rebalance_timeout_seconds: float = _setting(
        10.0,
        "Consumer-group rebalance timeout (on Tansu also the time a lone worker takes to join).",
    )
    group_instance_id: str = _setting(
        "",
        "Static consumer-group membership id, unique per worker (e.g. the pod name); empty:"
        " dynamic membership. A restarted worker with the same id gets its partitions back"
        " without waiting for the group to rebalance.",
    )
    session_timeout_seconds: float = _setting(10.0, "Consumer-group session timeout.")
    log_level: str = _setting("info", "Log level of the worker.")

    def __post_init__(self) -> None:
        for name in ("security_protocol", "sasl_mechanism"):
            object.__setattr__(self, name, getattr(self, name).strip().upper())
        problem = _security_problem(self)
        if problem:
            raise ValueError(problem)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then environment variables, then explicit overrides (e.g. CLI options)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(env_name(f.name))
            if raw is not None and raw != "":
                values[f.name] = _parse(f.type, raw, f.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The settings as environment variables, e.g. for a worker subprocess."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            env[env_name(f.name)] = ",".join(value) if isinstance(value, tuple) else str(value)
        return env

    @property
    def user_ttl_ms(self) -> int:
        return self.user_ttl_seconds * 1000

    @property
    def max_future_skew_ms(self) -> int:
        return self.max_future_skew_seconds * 1000

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers to connect to (Kafka's conventional default when unset)."""
        return self.bootstrap_servers or "localhost:9092"

    @property
    def broker_url(self) -> str:
        """Faust broker URL on the bundling transport (streams.worker.transport)."""
        return ";".join(f"propensity://{s.strip()}" for s in self.bootstrap.split(",") if s.strip())


def _security_problem(settings: Settings) -> str | None:
    """The first combination of security settings no client could connect with, in one line."""
    protocol = settings.security_protocol
    env = env_name
    if protocol not in SECURITY_PROTOCOLS:
        return (
            f"{env('security_protocol')}={protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}"
        )
    if settings.sasl_mechanism and settings.sasl_mechanism not in SASL_MECHANISMS:
        return (
            f"{env('sasl_mechanism')}={settings.sasl_mechanism!r} is not one of"
            f" {', '.join(SASL_MECHANISMS)}"
        )
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password"):
        if getattr(settings, name) and protocol not in TLS_PROTOCOLS:
            return (
                f"{env(name)} is set but {env('security_protocol')}={protocol} does not use TLS:"
                " use SSL or SASL_SSL"
            )
    for name in ("sasl_mechanism", "sasl_username", "sasl_password"):
        if getattr(settings, name) and protocol not in SASL_PROTOCOLS:
            return (
                f"{env(name)} is set but {env('security_protocol')}={protocol} does not use"
                " SASL: use SASL_PLAINTEXT or SASL_SSL"
            )
    if protocol in SASL_PROTOCOLS and not (settings.sasl_username and settings.sasl_password):
        return (
            f"{env('security_protocol')}={protocol} needs {env('sasl_username')} and"
            f" {env('sasl_password')}"
        )
    for name in ("ssl_keyfile", "ssl_key_password"):
        if getattr(settings, name) and not settings.ssl_certfile:
            return f"{env(name)} is set but {env('ssl_certfile')} (the client certificate) is not"
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            return f"{env(name)}={path} is not a file"
    return None


def _parse(kind: Any, raw: str, name: str) -> Any:
    if kind in (bool, "bool"):
        word = raw.strip().lower()
        if word not in _TRUE | _FALSE:
            raise ValueError(f"{env_name(name)}={raw!r} is not true or false")
        return word in _TRUE
    try:
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in (Path, "Path"):
            return Path(raw)
        if kind in (tuple[str, ...], "tuple[str, ...]"):
            return tuple(t.strip() for t in raw.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"{env_name(name)}={raw!r} is not a valid {kind}") from None
    return raw


def settings_table() -> list[tuple[str, str, str, str]]:
    """(setting, environment variable, default, help) rows for the README and --help."""
    rows = []
    for f in fields(Settings):
        default = f.default
        shown = ",".join(default) if isinstance(default, tuple) else str(default)
        rows.append((f.name, env_name(f.name), shown, f.metadata.get("help", "")))
    return rows


def env_help(name: str) -> str:
    """Help text for a CLI option bound to a setting: its meaning and environment variable."""
    f = next(f for f in fields(Settings) if f.name == name)
    return f"{f.metadata['help']} [env: {env_name(name)}]"
