"""The live model-quality and drift figures a worker exports, read from its /metrics, for the
demo's terminal table."""

import contextlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from model.simulate.drift import Drift

HEADS = ("purchase", "cart_abandon")


class MetricsSource(Protocol):
    def metrics(self) -> str: ...


@dataclass
class WorkerFigures:
    """What the demo shows of one /metrics scrape (NaN where the worker has no figure yet)."""

    live: dict[tuple[str, str], float] = field(default_factory=dict)  # (name, head), count window
    test_auc: dict[str, float] = field(default_factory=dict)  # head -> artifact's test ROC-AUC
    psi: dict[str, float] = field(default_factory=dict)  # head or "event mix" -> PSI
    threshold: float = math.nan
    outcomes_published: float = 0.0
    pending: float = 0.0

    def get(self, name: str, head: str) -> float:
        return self.live.get((name, head), math.nan)


def read_figures(text: str) -> WorkerFigures:
    """Parse a worker's /metrics text into the figures the demo shows."""
    figures = WorkerFigures()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name.startswith("propensity_live_") and labels.get("window") == "count":
                key = (name.removeprefix("propensity_live_"), labels["head"])
                figures.live[key] = value
            elif name == "propensity_model_reference":
                if labels.get("split") == "test" and labels.get("metric") == "roc_auc":
                    figures.test_auc[labels["head"]] = value
            elif name == "propensity_score_psi":
                figures.psi[labels["head"]] = value
            elif name == "propensity_event_mix_psi":
                figures.psi["event mix"] = value
            elif name == "propensity_drift_psi_threshold":
                figures.threshold = value
            elif name == "propensity_outcomes_published_total":
                figures.outcomes_published += value
            elif name == "propensity_outcome_pending":
                figures.pending = value
    return figures


def _number(value: float, digits: int = 3) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


class QualityView:
    """The demo's "Model quality" table, refreshed from the worker's /metrics."""

    def __init__(self, worker: MetricsSource, drift: Drift) -> None:
        self.worker = worker
        self.drift = drift
        self.figures = WorkerFigures()
        self.event_ts = 0

    def refresh(self, event_ts: int) -> None:
        self.event_ts = event_ts
        with contextlib.suppress(OSError):  # busy or stopping: keep the last figures
            self.figures = read_figures(self.worker.metrics())

    def render(self) -> Table:
        f = self.figures
        when = datetime.fromtimestamp(self.drift.at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        now = (
            datetime.fromtimestamp(self.event_ts / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            if self.event_ts
            else "-"
        )
        phase = "[bold red]after the drift[/]" if self.event_ts >= self.drift.at_ms else "before"
        table = Table(
            title=f"Model quality: event time {now} ({phase}; {self.drift.kind} drift at {when})"
            f" - outcomes {f.outcomes_published:,.0f}, pending {f.pending:,.0f}",
            expand=True,
        )
        for column in (
            "head",
            "live ROC-AUC",
            "test ROC-AUC",
            "predicted rate",
            "observed rate",
            "ECE",
            "outcomes",
            f"score PSI (alert > {_number(f.threshold, 2)})",
        ):
            table.add_column(column, justify="left" if column == "head" else "right")
        for head in HEADS:
            psi = f.psi.get(head, math.nan)
            drifted = not math.isnan(psi) and psi > f.threshold
            table.add_row(
                head,
                _number(f.get("roc_auc", head)),
                _number(f.test_auc.get(head, math.nan)),
                _number(f.get("predicted_rate", head)),
                _number(f.get("observed_rate", head)),
                _number(f.get("ece", head)),
                _number(f.get("outcomes", head), 0),
                f"[bold red]{_number(psi)}[/]" if drifted else _number(psi),
            )
        mix = f.psi.get("event mix", math.nan)
        table.add_row("event mix", "", "", "", "", "", "", _number(mix))
        return table


@dataclass
class ActionFigures:
    """What the demo shows of the worker's action and uplift metrics."""

    decided: dict[tuple[str, str], float] = field(default_factory=dict)  # (action, assignment)
    suppressed: dict[tuple[str, str], float] = field(default_factory=dict)  # (action, reason)
    uplift: dict[tuple[str, str], float] = field(default_factory=dict)  # (name, action)
    arms: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (name, action, arm)

    @property
    def actions(self) -> list[str]:
        return sorted({a for a, _ in self.decided} | {a for a, _ in self.suppressed})


def read_action_figures(text: str) -> ActionFigures:
    """Parse a worker's /metrics text into the action figures the demo shows."""
    figures = ActionFigures()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "propensity_actions_decided_total":
                key = (labels["action"], labels["assignment"])  # summed over policy hashes
                figures.decided[key] = figures.decided.get(key, 0.0) + value
            elif name == "propensity_actions_suppressed_total":
                key = (labels["action"], labels["reason"])
                figures.suppressed[key] = figures.suppressed.get(key, 0.0) + value
            elif name.startswith("propensity_uplift_") and "assignment" in labels:
                short = name.removeprefix("propensity_uplift_")
                figures.arms[(short, labels["action"], labels["assignment"])] = value
            elif name.startswith("propensity_uplift_") and "action" in labels:
                figures.uplift[(name.removeprefix("propensity_uplift_"), labels["action"])] = value
    return figures


class ActionsView:
    """The demo's "Actions" table: decisions, suppressions, and the uplift estimate."""

    def __init__(self, worker: MetricsSource, effect: float) -> None:
        self.worker = worker
        self.effect = effect
        self.figures = ActionFigures()

    def refresh(self) -> None:
        with contextlib.suppress(OSError):
            self.figures = read_action_figures(self.worker.metrics())

    def render(self) -> Table:
        f = self.figures
        table = Table(
            title="Actions (control: decided, never sent) and their measured uplift; simulated"
            f" shoppers react to a treatment with probability {self.effect:g}",
            expand=True,
        )
        for column in (
            "action",
            "treatment",
            "control",
            "suppressed",
            "treated conv.",
            "control conv.",
            "uplift [95 % interval]",
        ):
            table.add_column(column, justify="left" if column == "action" else "right")
        for action in f.actions:
            suppressed = ", ".join(
                f"{reason} {count:,.0f}"
                for (name, reason), count in sorted(f.suppressed.items())
                if name == action and count
            )
            rates = [
                f"{_number(f.arms.get(('conversion_rate', action, arm), math.nan))}"
                f" of {f.arms.get(('users', action, arm), 0):,.0f}"
                for arm in ("treatment", "control")
            ]
            low = f.uplift.get(("ci_low", action), math.nan)
            high = f.uplift.get(("ci_high", action), math.nan)
            uplift = f.uplift.get(("absolute", action), math.nan)
            table.add_row(
                action,
                f"{f.decided.get((action, 'treatment'), 0):,.0f}",
                f"{f.decided.get((action, 'control'), 0):,.0f}",
                suppressed or "-",
                *rates,
                f"{_number(uplift)} [{_number(low)}, {_number(high)}]",
            )
        return table
