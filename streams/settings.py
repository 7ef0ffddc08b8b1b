"""The one settings object, read from environment variables (prefix PROPENSITY_)."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from schemas.events import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_FUTURE_MS

ENV_PREFIX = "PROPENSITY_"


def _env_name(name: str) -> str:
    return "KAFKA_BOOTSTRAP_SERVERS" if name == "bootstrap_servers" else ENV_PREFIX + name.upper()


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Every runtime setting. Build once with Settings.from_env() and pass it down."""

    bootstrap_servers: str = _setting(
        "",
        "Kafka bootstrap servers (host:port,...). Empty: `demo` starts the embedded broker;"
        " other commands use localhost:9092.",
    )
    app_id: str = _setting("propensity", "Faust application id = consumer group and table prefix.")
    input_topics: tuple[str, ...] = _setting(
        ("clicks", "carts", "purchases"),
        "Comma-separated input topics; one combined topic also works.",
    )
    output_topic: str = _setting("propensities", "Topic the propensity events are published to.")
    dlq_topic: str = _setting("events.dlq", "Dead-letter topic for malformed input.")
    partitions: int = _setting(8, "Partitions used when this service creates topics.")
    model_path: Path = _setting(Path("artifacts/model.pt"), "TorchScript model artifact to serve.")
    model_sha256: str = _setting(
        "",
        "Content digest (SHA-256, printed by `propensity train`) the model must have;"
        " empty: not pinned.",
    )
    window_size: int = _setting(64, "Events kept per user in the rolling sequence table.")
    user_ttl_seconds: int = _setting(7 * 86_400, "Users idle longer than this are forgotten.")
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
    metrics_host: str = _setting("0.0.0.0", "Address the /metrics endpoint binds to.")
    metrics_port: int = _setting(9464, "Port of the /metrics endpoint (0 disables it).")
    data_dir: Path = _setting(Path("propensity-data"), "Faust data directory (table stores).")
    table_store: str = _setting("memory://", "Faust table store URL (memory:// or rocksdb://).")
    verify_changelog_end: bool = _setting(
        True,
        "Confirm each changelog partition's end offset with a fetch before table recovery"
        " (some brokers, the embedded Tansu among them, under-report it).",
    )
    sweep_interval_seconds: float = _setting(60.0, "How often idle users are expired.")
    lag_interval_seconds: float = _setting(5.0, "How often consumer lag is measured.")
    rebalance_timeout_seconds: float = _setting(
        10.0,
        "Consumer-group rebalance timeout (on Tansu also the time a lone worker takes to join).",
    )
    session_timeout_seconds: float = _setting(10.0, "Consumer-group session timeout.")
    log_level: str = _setting("info", "Log level of the worker.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then environment variables, then explicit overrides (e.g. CLI options)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(_env_name(f.name))
            if raw is not None and raw != "":
                values[f.name] = _parse(f.type, raw, f.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The settings as environment variables, e.g. for a worker subprocess."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            env[_env_name(f.name)] = ",".join(value) if isinstance(value, tuple) else str(value)
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
        """Faust broker URL on the bundling transport (streams.transport)."""
        return ";".join(f"propensity://{s.strip()}" for s in self.bootstrap.split(",") if s.strip())


def _parse(kind: Any, raw: str, name: str) -> Any:
    try:
        if kind in (bool, "bool"):
            return _parse_bool(raw, name)
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in (Path, "Path"):
            return Path(raw)
        if kind in (tuple[str, ...], "tuple[str, ...]"):
            return tuple(t.strip() for t in raw.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"{_env_name(name)}={raw!r} is not a valid {kind}") from None
    return raw


def _parse_bool(raw: str, name: str) -> bool:
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{_env_name(name)}={raw!r} is not true/false")


def settings_table() -> list[tuple[str, str, str, str]]:
    """(setting, environment variable, default, help) rows for the README and --help."""
    rows = []
    for f in fields(Settings):
        default = f.default
        shown = ",".join(default) if isinstance(default, tuple) else str(default)
        rows.append((f.name, _env_name(f.name), shown, f.metadata.get("help", "")))
    return rows


def env_help(name: str) -> str:
    """Help text for a CLI option bound to a setting: its meaning and environment variable."""
    f = next(f for f in fields(Settings) if f.name == name)
    return f"{f.metadata['help']} [env: {_env_name(name)}]"
