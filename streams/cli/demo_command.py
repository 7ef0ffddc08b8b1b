"""`propensity demo`: broker, model, worker and simulated shoppers, with a live table; with
``--drift``, shoppers replayed in their own (simulated) time, a world that changes mid-run, and
the live model quality and drift figures the worker exports."""

import asyncio
import contextlib
import socket
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import orjson
from aiokafka import AIOKafkaConsumer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from model.simulate import SimulationConfig, simulate
from model.simulate.drift import DRIFT_KINDS, Drift
from model.simulate.reaction import Reaction, ReactiveSimulation
from schemas.events import ShopEvent
from schemas.units import DAY_MS
from streams.cli.options import build_settings, kafka_options, one_line_errors, setting_option
from streams.harness.broker import EmbeddedBroker, free_port
from streams.harness.producer import (
    SendStats,
    live_events,
    record_for_event,
    send_records,
    with_malformed,
)
from streams.harness.supervisor import WorkerProcess, start_worker
from streams.harness.worker_figures import ActionsView, QualityView
from streams.worker.admin import ensure_topics, service_topics
from streams.worker.kafka_security import aiokafka_options
from streams.worker.settings import Settings

# The example policy of a source checkout (deploy/ is not installed with the package).
DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "deploy" / "policy.toml"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


class LiveView:
    """What the demo shows: the latest propensity per user, newest first, and counters."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.latest: dict[str, dict[str, Any]] = {}
        self.scored = 0
        self.dead = 0
        self.dead_reasons: dict[str, int] = {}
        self.latencies: deque[float] = deque(maxlen=2000)
        self.started = time.monotonic()
        self.latest_event_ts = 0

    def on_propensity(self, body: dict[str, Any], published_ms: int) -> None:
        self.scored += 1
        self.latest_event_ts = max(self.latest_event_ts, body["event_ts"])
        self.latest.pop(body["user_id"], None)
        self.latest[body["user_id"]] = body
        if len(self.latest) > 5000:
            del self.latest[next(iter(self.latest))]
        if body.get("input_ts"):
            self.latencies.append(published_ms - body["input_ts"])

    def on_dead_letter(self, reason: str) -> None:
        self.dead += 1
        self.dead_reasons[reason] = self.dead_reasons.get(reason, 0) + 1

    def render(
        self, sent: int, quality: QualityView | None = None, actions: ActionsView | None = None
    ) -> Group:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        ordered = sorted(self.latencies)
        p50 = ordered[len(ordered) // 2] if ordered else float("nan")
        stats = Table.grid(padding=(0, 3))
        stats.add_row(
            f"sent [bold]{sent:,}[/]",
            f"scored [bold]{self.scored:,}[/] ({self.scored / elapsed:,.0f}/s)",
            f"dead letters [bold]{self.dead:,}[/] {self.dead_reasons or ''}",
            f"latency p50 [bold]{p50:.0f} ms[/]",
        )
        table = Table(title="Latest propensity per shopper (newest first)", expand=True)
        for column in ("user", "event", "P(purchase)", "P(cart abandoned)", "cart", "model"):
            table.add_column(column)
        for body in list(reversed(self.latest.values()))[: self.rows]:
            cart = body["scores"]["cart_abandon"]
            purchase = body["scores"]["purchase"]
            style = "bold green" if purchase >= 0.5 else ""
            table.add_row(
                body["user_id"],
                body["event_type"],
                f"[{style}]{purchase:.3f}[/]" if style else f"{purchase:.3f}",
                "-" if cart is None else f"{cart:.3f}",
                str(body.get("cart_items", 0)),
                body["model_version"],
            )
        parts = [stats]
        if quality is not None:
            parts.append(quality.render())
        if actions is not None:
            parts.append(actions.render())
        return Group(*parts, table)


async def _follow(
    settings: Settings,
    view: LiveView,
    stop: asyncio.Event,
    shoppers: ReactiveSimulation | None = None,
) -> None:
    """Show the propensities and dead letters; with ``shoppers``, hand them the treatment
    actions too (they may react: the simulator answers back)."""
    topics = [settings.output_topic, settings.dlq_topic]
    if shoppers is not None:
        topics.append(settings.actions_topic)
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="latest",
        enable_auto_commit=False,
        **aiokafka_options(settings),
    )
    try:
        await consumer.start()  # inside try: a failed start is stopped too
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for tp, messages in batch.items():
                for m in messages:
                    if tp.topic == settings.output_topic:
                        view.on_propensity(orjson.loads(m.value), m.timestamp)
                    elif tp.topic == settings.actions_topic:
                        action = orjson.loads(m.value)
                        if shoppers is not None and action["assignment"] == "treatment":
                            shoppers.nudge(action["user_id"], action["decided_at"])
                    else:
                        view.on_dead_letter(dict(m.headers).get("dlq.reason", b"?").decode())
    finally:
        await consumer.stop()


async def _run(
    settings: Settings,
    users: int,
    rate: float,
    bad_every: int,
    duration: float | None,
    console: Console,
    drift: Drift | None,
    quality: QualityView | None,
    actions: tuple[ActionsView, Reaction] | None = None,
) -> tuple[LiveView, int]:
    stop = asyncio.Event()
    compact = quality is not None or actions is not None
    view = LiveView(rows=min(8 if compact else 15, max(console.height - 20, 5)))
    config = SimulationConfig(n_users=users, days=365.0, seed=int(time.time()), with_oracle=False)
    shoppers = None
    events: Iterator[ShopEvent]
    if actions is not None:  # simulated time, shoppers that react to the actions they get
        shoppers = ReactiveSimulation(config, actions[1], drift)
        events = (item.event for item in shoppers)
    elif drift is None:
        events = live_events(item.event for item in simulate(config))
    else:  # simulated time: horizons close at replay speed, so outcomes come within minutes
        events = (item.event for item in simulate(config, drift))
    action_view = None if actions is None else actions[0]
    records = with_malformed(
        (record_for_event(e, settings.input_topics) for e in events),
        bad_every,
        settings.input_topics[0],
    )
    follower = asyncio.create_task(_follow(settings, view, stop, shoppers))
    await asyncio.sleep(1.0)  # the follower is subscribed before the first event goes out
    stats = SendStats()
    sending = asyncio.create_task(
        send_records(settings, records, rate=rate, stop=stop, stats=stats)
    )
    deadline = None if duration is None else time.monotonic() + duration
    with Live(view.render(0), console=console, refresh_per_second=4, transient=False) as live:
        try:
            while deadline is None or time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                if quality is not None:
                    quality.refresh(view.latest_event_ts)
                if action_view is not None:
                    action_view.refresh()
                live.update(view.render(stats.sent, quality, action_view))
                if sending.done():
                    break
        finally:
            stop.set()
            await sending
            await asyncio.sleep(3.0)  # let the last propensities arrive
            await follower
            live.update(view.render(stats.sent, quality, action_view))
    return view, stats.sent


@click.command()
@kafka_options
@setting_option("model_path", "--model")
@click.option(
    "--duration", type=float, default=None, help="Stop after this many seconds (default: Ctrl-C)."
)
@click.option("--rate", type=float, default=200.0, help="Simulated events per second.")
@click.option("--users", type=int, default=2000, help="Simulated shoppers.")
@click.option(
    "--bad-every", type=int, default=250, help="Send a malformed copy of every Nth event (0: none)."
)
@click.option(
    "--drift",
    "drift_kind",
    type=click.Choice(DRIFT_KINDS),
    default=None,
    help="Replay the shoppers in simulated time and change their world at --drift-at; show the"
    " live model quality (AUC, calibration) and drift (PSI) figures beside the propensities.",
)
@click.option(
    "--actions",
    "with_actions",
    is_flag=True,
    help="Decide marketing actions with the policy (PROPENSITY_POLICY_PATH, default"
    " deploy/policy.toml); simulated shoppers react to treatment actions (--effect) and the"
    " table shows decisions, suppressions and the measured uplift converging.",
)
@click.option(
    "--effect",
    type=float,
    default=0.3,
    show_default=True,
    help="With --actions: the chance a nudged shopper with a cart comes back and buys.",
)
@click.option(
    "--drift-at",
    type=float,
    default=2.0,
    show_default=True,
    help="Simulated days after the start when the --drift begins.",
)
def demo(
    duration: float | None,
    rate: float,
    users: int,
    bad_every: int,
    drift_kind: str | None,
    drift_at: float,
    with_actions: bool,
    effect: float,
    **overrides: Any,
) -> None:
    """Run everything on this machine and show live propensities.

    Starts the embedded Tansu broker (unless KAFKA_BOOTSTRAP_SERVERS is set), creates the
    topics, trains a small model on simulated shoppers if the model file is missing, starts
    the worker, streams simulated shoppers into Kafka and shows the propensities as they are
    published. Ctrl-C (or --duration) stops everything.

    With --drift the shoppers keep their simulated event times (one simulated day passes in
    about 10,000 / --rate seconds), so predictions get their outcomes within minutes: the
    table shows live ROC-AUC against the model's test figure, calibration and the PSI of the
    scores, before and after the drift.
    """
    console = Console()
    settings = build_settings(**overrides)
    if with_actions and not settings.policy_path:
        if not DEFAULT_POLICY.is_file():
            raise click.UsageError(
                f"--actions needs PROPENSITY_POLICY_PATH ({DEFAULT_POLICY} is absent)"
            )
        settings = replace(settings, policy_path=str(DEFAULT_POLICY))
    if not _port_free(settings.metrics_port):
        settings = replace(settings, metrics_port=free_port())
    broker = None
    worker: WorkerProcess | None = None
    try:
        if not settings.bootstrap_servers:
            broker = EmbeddedBroker().start()
            settings = replace(settings, bootstrap_servers=broker.bootstrap_servers)
            console.print(f"[bold]broker[/] embedded Tansu on {broker.bootstrap_servers}")
        else:
            console.print(f"[bold]broker[/] {settings.bootstrap_servers}")
        with one_line_errors(settings):
            ensure_topics(settings, service_topics(settings))
        if not Path(settings.model_path).is_file():
            from model.training.train import (
                train_simulated,  # torch training: imported only when needed
            )

            console.print(
                f"[bold]model[/] {settings.model_path} missing: "
                "training a small one on simulated shoppers"
            )
            meta = train_simulated(Path(settings.model_path), quick=True, progress=True)
            console.print(f"[bold]model[/] trained {meta.model_version}")
        log_path = Path(settings.data_dir) / "worker.log"
        worker = start_worker(settings, log_path)
        console.print(
            f"[bold]worker[/] starting (log: {log_path}, metrics: http://127.0.0.1:{settings.metrics_port}/metrics)"
        )
        worker.wait_ready(timeout=120)
        console.print("[bold]worker[/] ready; streaming simulated shoppers (Ctrl-C stops)")
        drift = quality = None
        if drift_kind is not None:
            start_ms = SimulationConfig().start_ms
            drift = Drift(drift_kind, start_ms + round(drift_at * DAY_MS))
            quality = QualityView(worker, drift)
        actions = (ActionsView(worker, effect), Reaction(effect)) if with_actions else None
        with contextlib.suppress(KeyboardInterrupt), one_line_errors(settings):
            view, sent = asyncio.run(
                _run(settings, users, rate, bad_every, duration, console, drift, quality, actions)
            )
            console.print(
                f"[bold]done[/]: {sent:,} events sent, {view.scored:,} propensities, "
                f"{view.dead:,} dead letters {view.dead_reasons}"
            )
    except (RuntimeError, TimeoutError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    finally:
        if worker is not None:
            worker.stop()
        if broker is not None:
            broker.stop()
        console.print("stopped broker and worker")
