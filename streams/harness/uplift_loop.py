"""An offline closed loop for uplift (no Kafka): simulated shoppers are scored by the
worker's SequenceScorer, a decision function picks actions, the contract's hash splits users
into treatment and control, treated shoppers are nudged and may react, and the action
outcomes (purchase within the horizon after the decision) feed an UpliftTable.

The truth comes from the simulated world itself: the same seed is run a second time with
the assignment flipped (control nudged, treatment not). Shoppers are independent and a
user's first decision comes before any nudge of that user, so the two runs give every
first-decided user both potential outcomes; the true uplift is their mean difference.
"""

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from model.monitoring.uplift import UpliftFigures, UpliftTable
from model.serving.export import LoadedModel
from model.serving.labels import bought_within
from model.serving.scorer import SequenceScorer
from model.serving.user_state import UserState
from model.simulate import SimulationConfig
from model.simulate.config import SimulatedEvent
from model.simulate.reaction import Reaction, ReactiveSimulation
from schemas.events import ShopEvent
from schemas.units import DAY_MS
from streams.worker.actions.assignment import action_id, hash_fraction

SLICE: Final = 128  # events scored together, as the worker's slices: decisions follow a slice
CART_REMINDER: Final = "cart_reminder"


class Propensity(NamedTuple):
    """What a decision function sees of one scored event."""

    event: ShopEvent
    purchase: float
    cart_abandon: float | None


Decide = Callable[[Propensity], list[str]]  # the actions decided on this propensity


@dataclass
class CartReminderOncePerDay:
    """The stand-in policy: a cart reminder on an add to cart whose cart-abandonment score is
    at least ``min_score``, at most once per user per UTC day."""

    min_score: float = 0.5
    _last_day: dict[str, int] = field(default_factory=dict)

    def __call__(self, p: Propensity) -> list[str]:
        if p.event.event_type != "add_to_cart" or p.cart_abandon is None:
            return []
        day = p.event.ts // DAY_MS
        if p.cart_abandon < self.min_score or self._last_day.get(p.event.user_id) == day:
            return []
        self._last_day[p.event.user_id] = day
        return [CART_REMINDER]


class Decision(NamedTuple):
    action_id: str
    action: str
    user_id: str
    assignment: str
    decided_at: int


@dataclass(frozen=True)
class LoopPlan:
    """One closed-loop experiment."""

    users: int = 1000
    days: float = 7.0
    seed: int = 7
    effect: float = 0.3
    control_share: float = 0.5
    salt: str = "uplift-loop"
    horizon_ms: int = DAY_MS

    def config(self) -> SimulationConfig:
        return SimulationConfig(
            n_users=self.users, days=self.days, seed=self.seed, with_oracle=False
        )


@dataclass
class LoopRun:
    """One pass of the loop: every decision, every purchase time per user, the run's end."""

    decisions: list[Decision]
    purchases: dict[str, list[int]]
    end_ms: int
    responses: int


def _slices(events: Iterator[SimulatedEvent], size: int) -> Iterator[list[ShopEvent]]:
    batch: list[ShopEvent] = []
    for item in events:
        batch.append(item.event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_loop(
    model: LoadedModel, plan: LoopPlan, decide: Decide, nudge_control: bool = False
) -> LoopRun:
    """Simulate, score slice by slice, decide, assign, nudge the treated (or, flipped, the
    control group), and record decisions and purchases."""
    sim = ReactiveSimulation(plan.config(), Reaction(plan.effect))
    scorer = SequenceScorer(model)
    states: dict[str, UserState] = {}
    decisions: list[Decision] = []
    purchases: dict[str, list[int]] = {}
    for batch in _slices(iter(sim), SLICE):
        for event, score in zip(batch, scorer.score(batch, states, 0), strict=True):
            assert score is not None  # no positions: nothing is skipped as redelivered
            if event.event_type == "purchase":
                purchases.setdefault(event.user_id, []).append(event.ts)
            for action in decide(Propensity(event, score.purchase, score.cart_abandon)):
                assert event.event_id is not None  # the simulator names every event
                control = hash_fraction(f"{plan.salt}|{event.user_id}") < plan.control_share
                assignment = "control" if control else "treatment"
                decisions.append(
                    Decision(
                        action_id(event.event_id, action),
                        action,
                        event.user_id,
                        assignment,
                        event.ts,
                    )
                )
                if control == nudge_control:
                    sim.nudge(event.user_id, event.ts)
    return LoopRun(decisions, purchases, plan.config().end_ms, sim.responses_scheduled)


def outcome_records(run: LoopRun, horizon_ms: int) -> Iterator[dict[str, Any]]:
    """The contract's action-outcome record of every decision whose horizon closed."""
    for d in run.decisions:
        if d.decided_at + horizon_ms > run.end_ms:
            continue  # the horizon runs past the simulated days: unknown, not negative
        bought_at = first_purchase(run.purchases.get(d.user_id, []), d.decided_at, horizon_ms)
        yield {
            "action_id": d.action_id,
            "action": d.action,
            "user_id": d.user_id,
            "assignment": d.assignment,
            "decided_at": d.decided_at,
            "horizon_ms": horizon_ms,
            "converted": int(bought_at is not None),
            # as the outcome join resolves: at the purchase, else when the horizon closes
            "resolved_at": d.decided_at + horizon_ms if bought_at is None else bought_at,
        }


def first_purchase(purchase_times: list[int], decided_at: int, horizon_ms: int) -> int | None:
    """The label rule: the first purchase at or after the decision if within the horizon."""
    i = bisect.bisect_left(purchase_times, decided_at)
    first = purchase_times[i] if i < len(purchase_times) else -1
    return first if bought_within(decided_at, first, horizon_ms) else None


def converted(purchase_times: list[int], decided_at: int, horizon_ms: int) -> int:
    return int(first_purchase(purchase_times, decided_at, horizon_ms) is not None)


def first_outcomes(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(action, user) -> the record of the user's first decision of that action."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: (r["decided_at"], r["action_id"])):
        first.setdefault((r["action"], r["user_id"]), r)
    return first


@dataclass(frozen=True)
class LoopResult:
    """Measured uplift (the A/B table) against the true uplift of the same users."""

    plan: LoopPlan
    measured: UpliftFigures
    true_uplift: float  # mean over first-decided users of converted(nudged) - converted(not)
    users: int  # first-decided users with a closed horizon
    mismatched_first_decisions: int  # should be 0: both runs decide alike before any nudge
    responses: int

    @property
    def covered(self) -> bool:
        return self.measured.ci_low <= self.true_uplift <= self.measured.ci_high


def measure(model: LoadedModel, plan: LoopPlan, decide: Callable[[], Decide]) -> LoopResult:
    """Run the loop as assigned and flipped; ``decide`` makes a fresh policy per run."""
    assigned = run_loop(model, plan, decide())
    flipped = run_loop(model, plan, decide(), nudge_control=True)
    records = list(outcome_records(assigned, plan.horizon_ms))
    table = UpliftTable()
    for record in records:
        table.observe(record)
    (row,) = [r for r in table.figures() if r.action == CART_REMINDER]
    as_assigned = first_outcomes(records)
    as_flipped = first_outcomes(list(outcome_records(flipped, plan.horizon_ms)))
    differences = []
    mismatched = 0
    for key, record in as_assigned.items():
        other = as_flipped.get(key)
        if other is None or other["action_id"] != record["action_id"]:
            mismatched += 1
            continue
        treated = record["assignment"] == "treatment"
        nudged, plain = (record, other) if treated else (other, record)
        differences.append(nudged["converted"] - plain["converted"])
    mismatched += len(as_flipped.keys() - as_assigned.keys())
    truth = sum(differences) / len(differences) if differences else float("nan")
    return LoopResult(
        plan, row, truth, len(differences), mismatched, assigned.responses + flipped.responses
    )
