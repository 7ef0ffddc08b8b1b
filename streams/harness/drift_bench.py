"""`propensity bench-drift`: how noisy the worker's PSI is without drift, and how soon it
alerts with drift, on simulated weeks scored offline by the worker's own scorer and window.

Each run simulates shoppers (a burn-in first: the simulator starts every shopper new, the
reference comes from a window days into the training run), scores every event with
SequenceScorer exactly as the stream does, feeds the scores, slice by slice, to the same
DriftWindow the worker keeps, and samples its PSI once per minute of event time, as a
Prometheus scrape would. An alert mirrors a rule ``max by (model_version)
(propensity_score_psi) > threshold`` with ``for: 15m``: the PSI of either head above the
threshold at every sample of 15 consecutive minutes of event time.
"""

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from model.monitoring.drift import DriftWindow
from model.serving.export import LoadedModel
from model.serving.reference import DriftReference
from model.serving.scorer import SequenceScorer
from model.serving.user_state import UserState
from model.simulate import SimulationConfig, simulate
from model.simulate.drift import Drift
from schemas.events import ShopEvent
from schemas.units import DAY_MS, MINUTE_MS

SAMPLE_MS: Final = MINUTE_MS  # one PSI sample per minute of event time
ALERT_FOR_MS: Final = 15 * MINUTE_MS  # the alert rule's `for: 15m`
SCORING_BATCH: Final = 512
SLICE: Final = 128  # the worker's SLICE_SIZE: the window is fed slice by slice


@dataclass(frozen=True)
class ScoredRun:
    """Every event of a run with the scores the worker would have published."""

    ts: np.ndarray  # (N,) int64 event time, ms
    event_types: list[str]
    purchase: np.ndarray  # (N,) float64
    cart_abandon: list[float | None]


@dataclass(frozen=True)
class PsiSeries:
    """PSI sampled once per SAMPLE_MS of event time (NaN while a window is not full)."""

    times: np.ndarray  # (S,) int64 ms
    events_seen: np.ndarray  # (S,) events scored up to each sample
    purchase: np.ndarray  # (S,)
    cart_abandon: np.ndarray  # (S,)
    event_mix: np.ndarray  # (S,)

    @property
    def score_max(self) -> np.ndarray:
        """The larger of the two heads' PSI (what the alert compares), NaN as -inf."""
        heads = np.stack([self.purchase, self.cart_abandon])
        top: np.ndarray = np.max(np.where(np.isnan(heads), -np.inf, heads), axis=0)
        return top


@dataclass
class Timing:
    """Cost of the window in the worker's terms."""

    observe_us_per_event: float = math.nan
    figures_us: float = math.nan
    scoring_events_per_second: float = math.nan
    extra: dict[str, float] = field(default_factory=dict)


def score_events(model: LoadedModel, events: Iterable[ShopEvent]) -> ScoredRun:
    """Score ``events`` in arrival order with the worker's scorer (fresh states)."""
    scorer = SequenceScorer(model)
    states: dict[str, UserState] = {}
    ts: list[int] = []
    types: list[str] = []
    purchase: list[float] = []
    carts: list[float | None] = []
    for batch in _batches(events, SCORING_BATCH):
        for event, score in zip(batch, scorer.score(batch, states, 0), strict=True):
            assert score is not None  # no positions: nothing is skipped as redelivered
            ts.append(event.ts)
            types.append(event.event_type)
            purchase.append(score.purchase)
            carts.append(score.cart_abandon)
    return ScoredRun(np.array(ts, np.int64), types, np.array(purchase), carts)


def _batches(events: Iterable[ShopEvent], size: int) -> Iterator[list[ShopEvent]]:
    batch: list[ShopEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def simulated_run(
    model: LoadedModel, config: SimulationConfig, drift: Drift | None = None
) -> ScoredRun:
    return score_events(model, (item.event for item in simulate(config, drift)))


def psi_series(run: ScoredRun, reference: DriftReference, window: int) -> PsiSeries:
    """Feed ``run`` to a DriftWindow of ``window`` events in worker-sized slices and sample
    its figures at every SAMPLE_MS boundary of event time."""
    drift = DriftWindow(reference, window)
    start = int(run.ts[0]) // SAMPLE_MS * SAMPLE_MS + SAMPLE_MS
    times = np.arange(start, int(run.ts[-1]) + 1, SAMPLE_MS, dtype=np.int64)
    cuts = np.searchsorted(run.ts, times, side="left")  # events before each sample time
    out = np.full((len(times), 3), np.nan)
    fed = 0
    for s, cut in enumerate(cuts):
        for lo in range(fed, int(cut), SLICE):
            hi = min(lo + SLICE, int(cut))
            drift.observe(run.event_types[lo:hi], run.purchase[lo:hi], run.cart_abandon[lo:hi])
        fed = int(cut)
        figures = drift.figures()
        out[s] = (
            figures.score_psi["purchase"],
            figures.score_psi["cart_abandon"],
            figures.event_mix_psi,
        )
    return PsiSeries(times, cuts, out[:, 0], out[:, 1], out[:, 2])


def alert_active(above: np.ndarray, for_samples: int) -> np.ndarray:
    """At each sample: has ``above`` held at this and the ``for_samples`` samples before?"""
    run = np.zeros(len(above), np.int64)
    streak = 0
    for i, hit in enumerate(above):
        streak = streak + 1 if hit else 0
        run[i] = streak
    return run > for_samples


def alert_onsets(active: np.ndarray) -> np.ndarray:
    """Indices where an alert starts firing."""
    return np.flatnonzero(active & ~np.concatenate([[False], active[:-1]]))


def false_alarms_per_day(
    series: PsiSeries, threshold: float, from_ms: int, values: np.ndarray | None = None
) -> float:
    """Alert onsets per day of event time from ``from_ms`` on (a no-drift run)."""
    values = series.score_max if values is None else values
    active = alert_active(values > threshold, ALERT_FOR_MS // SAMPLE_MS)
    counted = series.times >= from_ms
    days = (series.times[-1] - max(from_ms, series.times[0])) / DAY_MS
    onsets = alert_onsets(active & counted)
    return len(onsets) / days if days > 0 else math.nan


@dataclass(frozen=True)
class Detection:
    """The first alert that starts at or after the drift: events and event time after it.
    ``already_firing``: a (false) alert was active when the drift began."""

    fired: bool
    events: int
    minutes: float
    already_firing: bool


def detection(series: PsiSeries, threshold: float, drift_at_ms: int) -> Detection:
    active = alert_active(series.score_max > threshold, ALERT_FOR_MS // SAMPLE_MS)
    after = series.times >= drift_at_ms
    at_index = int(np.flatnonzero(after)[0])
    already = bool(active[at_index - 1]) if at_index else False
    onsets = [i for i in alert_onsets(active) if i >= at_index]
    if not onsets:
        return Detection(False, -1, math.nan, already)
    first = int(onsets[0])
    events = int(series.events_seen[first] - series.events_seen[at_index])
    minutes = (int(series.times[first]) - drift_at_ms) / MINUTE_MS
    return Detection(True, events, minutes, already)


def quantiles(values: np.ndarray, levels: Sequence[float]) -> list[float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return [math.nan] * len(levels)
    return [float(q) for q in np.quantile(finite, levels)]


def time_window(reference: DriftReference, window: int, slices: int = 2000) -> Timing:
    """µs per event of DriftWindow.observe on worker-sized slices, and µs per figures()."""
    rng = np.random.default_rng(0)
    drift = DriftWindow(reference, window)
    purchase = rng.uniform(0, 1, SLICE).tolist()
    carts: list[float | None] = [p if i % 3 else None for i, p in enumerate(purchase)]
    types = ["view"] * SLICE
    began = time.perf_counter()
    for _ in range(slices):
        drift.observe(types, purchase, carts)
    observe = (time.perf_counter() - began) / (slices * SLICE) * 1e6
    began = time.perf_counter()
    for _ in range(200):
        drift.figures()
    figures = (time.perf_counter() - began) / 200 * 1e6
    return Timing(observe_us_per_event=observe, figures_us=figures)


@dataclass(frozen=True)
class BenchPlan:
    """What ``run_bench`` simulates and measures."""

    users: int = 3000
    burn_in_days: float = 7.0
    days: float = 7.0  # evaluated after the burn-in
    drift_after_days: float = 2.0  # of the evaluated days, in the drift runs
    seed: int = 7
    windows: tuple[int, ...] = (500, 1000, 2000, 5000, 10_000)
    thresholds: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25)
    kinds: tuple[str, ...] = ("conversion", "segment", "prices")

    def config(self) -> SimulationConfig:
        return SimulationConfig(
            n_users=self.users,
            days=self.burn_in_days + self.days,
            seed=self.seed,
            with_oracle=False,
        )

    @property
    def evaluated_from_ms(self) -> int:
        return self.config().start_ms + round(self.burn_in_days * DAY_MS)

    @property
    def drift_at_ms(self) -> int:
        return self.evaluated_from_ms + round(self.drift_after_days * DAY_MS)


@dataclass
class BenchResult:
    """Per window size: PSI quantiles without drift, false alarms per day per threshold,
    and per drift kind the detection per threshold."""

    plan: BenchPlan
    events_per_day: float
    psi_quantiles: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    false_alarms: dict[int, dict[float, float]] = field(default_factory=dict)
    detections: dict[str, dict[int, dict[float, Detection]]] = field(default_factory=dict)
    timing: dict[int, Timing] = field(default_factory=dict)


QUANTILE_LEVELS: Final = (0.5, 0.95, 0.99, 1.0)


def run_bench(
    model: LoadedModel,
    reference: DriftReference,
    plan: BenchPlan,
    progress: Callable[[str], None] = lambda _: None,
) -> BenchResult:
    """Score a no-drift run and one run per drift kind, then measure every window size."""
    config = plan.config()
    progress(f"scoring {plan.users:,} shoppers over {config.days:g} days without drift")
    began = time.perf_counter()
    baseline = simulated_run(model, config)
    rate = len(baseline.ts) / (time.perf_counter() - began)
    evaluated = baseline.ts >= plan.evaluated_from_ms
    result = BenchResult(plan, float(evaluated.sum()) / plan.days)
    for window in plan.windows:
        series = psi_series(baseline, reference, window)
        counted = series.times >= plan.evaluated_from_ms
        result.psi_quantiles[window] = {
            name: quantiles(values[counted], QUANTILE_LEVELS)
            for name, values in (
                ("purchase", series.purchase),
                ("cart_abandon", series.cart_abandon),
                ("event_mix", series.event_mix),
            )
        }
        result.false_alarms[window] = {
            t: false_alarms_per_day(series, t, plan.evaluated_from_ms) for t in plan.thresholds
        }
        result.timing[window] = time_window(reference, window)
        result.timing[window].scoring_events_per_second = rate
    for kind in plan.kinds:
        progress(f"scoring the same shoppers with a {kind} drift")
        run = simulated_run(model, config, Drift(kind, plan.drift_at_ms))
        result.detections[kind] = {}
        for window in plan.windows:
            series = psi_series(run, reference, window)
            result.detections[kind][window] = {
                t: detection(series, t, plan.drift_at_ms) for t in plan.thresholds
            }
    return result
