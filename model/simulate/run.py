"""Run the shoppers: one lazy event stream per shopper, merged into global time order."""

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from model.simulate.behaviour import Basket
from model.simulate.catalogue import Catalogue, Item, build_catalogue
from model.simulate.ceiling import CeilingModel, ShopperPosterior
from model.simulate.config import CHECKOUT_STEP_MS, SimulatedEvent, SimulationConfig
from model.simulate.drift import CONVERSION_FACTORS, NEW_SEGMENT, NEW_SEGMENT_FACTORS, Drift
from model.simulate.oracle import PurchaseOracle
from model.simulate.shopper import (
    INITIAL_INTENT,
    N_STATES,
    PURCHASE_KINDS,
    SEGMENTS,
    Kind,
    StateJumps,
    jump_table,
    next_jump,
    state_index,
    unpack,
)
from schemas.events import ShopEvent

_INTENT: Final = tuple(unpack(s)[1] for s in range(N_STATES))

Action = tuple[str, Item, int | None]  # event type, item, quantity


@dataclass(frozen=True)
class World:
    """Everything the shoppers of one run share."""

    config: SimulationConfig
    catalogue: Catalogue
    tables: tuple[list[StateJumps], ...]
    oracle: PurchaseOracle | None
    ceiling: CeilingModel | None
    drift: Drift | None = None
    # After a "conversion" drift: the tables of each segment in the drifted world.
    drifted_tables: tuple[list[StateJumps], ...] = ()


def build_world(config: SimulationConfig, drift: Drift | None = None) -> World:
    if drift is not None and config.with_oracle:
        raise ValueError("the oracle solves the undrifted world: simulate drift without it")
    oracle = PurchaseOracle() if config.with_oracle else None
    tables = tuple(jump_table(segment) for segment in SEGMENTS)
    drifted: tuple[list[StateJumps], ...] = ()
    if drift is not None and drift.kind == "segment":  # the newcomers' segment, after the rest
        tables = (*tables, jump_table(NEW_SEGMENT, NEW_SEGMENT_FACTORS))
    if drift is not None and drift.kind == "conversion":
        drifted = tuple(jump_table(segment, CONVERSION_FACTORS) for segment in SEGMENTS)
    catalogue = build_catalogue(config.n_items, config.seed)
    ceiling = CeilingModel(catalogue, config.horizon_ms, oracle) if oracle else None
    return World(config, catalogue, tables, oracle, ceiling, drift, drifted)


def _pick(rng: random.Random, shares: tuple[float, ...]) -> int:
    u = rng.random() * sum(shares)
    return next((i for i, acc in enumerate(itertools.accumulate(shares)) if u < acc), 0)


def _start(rng: random.Random, basket: Basket) -> tuple[int, int]:
    """A new shopper's segment, need and idle starting state (with an empty cart)."""
    segment = _pick(rng, tuple(s.share for s in SEGMENTS))
    basket.new_need(rng)
    return segment, state_index(0, _pick(rng, INITIAL_INTENT), 0)


def _actions(rng: random.Random, basket: Basket, kind: Kind, intent: int) -> list[Action]:
    """The visible events of one jump of the chain."""
    if kind in (Kind.START, Kind.VIEW, Kind.VIEW_INTEREST):
        return [("view", basket.view(rng, intent, kind == Kind.VIEW_INTEREST), None)]
    if kind == Kind.WISHLIST:
        return [("wishlist", basket.wish(rng), None)]
    if kind == Kind.ADD:
        return [("add_to_cart", *basket.add(rng))]
    if kind in (Kind.REMOVE, Kind.REMOVE_COOL):
        return [("remove_from_cart", *basket.remove(rng))]
    if kind == Kind.BUY_NOW:
        return [("purchase", basket.unheld(rng), 1)]
    return [("purchase", item, quantity) for item, quantity in basket.checkout()]


# A pending jump: (time ms, kind, next state); kind None is a nudge's response (a checkout).
Jump = tuple[float, Kind | None, int]
_NO_EVENTS: Final[list[SimulatedEvent]] = []


class Shopper:
    """One shopper's chain, stepped one jump at a time: ``sample`` draws the next jump,
    ``fire`` applies it and returns its visible events (none for a silent jump).

    After a visible event the chain restarts from exactly the event's (whole-millisecond)
    time and the hidden state the oracle is given, so the oracle describes the future this
    shopper will actually sample. A checkout's purchases are a second apart; the chain
    resumes after the last one, and the earlier ones have probability 1 (more follow).

    With a drift: a ``newcomer`` is of the drift's new segment and starts at the drift
    moment; after a "conversion" drift jumps follow the drifted tables; after a "prices"
    drift prices are scaled.

    A response (``respond_at``, set by model.simulate.reaction) replaces the first jump
    sampled at or after its time with a checkout of the cart, if the cart still holds
    anything; until then (and for good, when it does not) the shopper's random draws are
    exactly those of the plain chain.
    """

    def __init__(self, world: World, index: int, newcomer: bool = False) -> None:
        config = world.config
        self.world = world
        self.index = index
        self.rng = random.Random(f"{config.seed}/{index}")
        self.user_id = f"u{index:06d}"
        self.basket = Basket(world.catalogue)
        self.segment, self.state = _start(self.rng, self.basket)
        if newcomer:
            self.segment = len(SEGMENTS)  # build_world put the new segment's table last
        self.table = world.tables[self.segment]
        drift = world.drift
        self.switch_at = drift.at_ms if drift is not None and world.drifted_tables else None
        self.posterior = ShopperPosterior(world.ceiling, config.start_ms) if world.ceiling else None
        self.prefix = f"sim{config.seed}-{index}-"
        self.t = float(drift.at_ms if newcomer and drift is not None else config.start_ms)
        self.n_events = self.visits = 0
        self.visit = ""
        self.pending: Jump | None = None
        self.respond_at: float | None = None
        self.ended = False

    def sample(self) -> Jump | None:
        """Draw the next jump (kept as ``pending``); None once the run's end is reached."""
        if self.switch_at is not None and self.t >= self.switch_at:
            self.table, self.switch_at = self.world.drifted_tables[self.segment], None
        jump: Jump = next_jump(self.rng, self.table[self.state], self.t)
        if self.respond_at is not None and jump[0] >= self.respond_at:
            if unpack(self.state)[2]:
                jump = (self.respond_at, None, self.state)
            else:  # the cart emptied before the response: nothing to check out
                self.respond_at = None
        if jump[0] >= self.world.config.end_ms:
            self.ended, self.pending = True, None
            return None
        self.pending = jump
        return jump

    def fire(self) -> list[SimulatedEvent]:
        """Apply the pending jump; its visible events (the shopper ends at the run's end)."""
        assert self.pending is not None, "sample() before fire()"
        t, kind, state = self.pending
        self.pending = None
        if kind is None:
            return self._respond(t)
        self.state = state
        if kind >= Kind.NEED:  # silent jumps
            if kind == Kind.NEED and _INTENT[state] == 1:
                self.basket.new_need(self.rng)
            self.t = t
            return _NO_EVENTS
        if kind in PURCHASE_KINDS:
            self.respond_at = None  # bought without being reminded
        ts = int(t)
        if kind == Kind.START:
            self._new_visit()
        actions = _actions(self.rng, self.basket, kind, _INTENT[state])
        return self._emit(ts, actions)

    def _new_visit(self) -> None:
        self.visits += 1
        self.visit = f"{self.user_id}-{self.visits}"

    def _respond(self, t: float) -> list[SimulatedEvent]:
        """A nudge's response: the shopper comes back (a new visit when away) and checks
        out the cart (never empty here: ``sample`` drops a response to an empty cart)."""
        self.respond_at = None
        self.t = float(int(t))
        if not unpack(self.state)[0]:
            self._new_visit()
        self.state = state_index(1, 0, 0)  # where a checkout leaves the chain
        actions: list[Action] = [("purchase", i, q) for i, q in self.basket.checkout()]
        return self._emit(int(t), actions)

    def _emit(self, ts: int, actions: list[Action]) -> list[SimulatedEvent]:
        end = self.world.config.end_ms
        oracle = self.world.oracle
        drift = self.world.drift
        events: list[SimulatedEvent] = []
        for i, (event_type, item, quantity) in enumerate(actions):
            when = ts + i * CHECKOUT_STEP_MS
            if when >= end:
                self.ended = True
                return events
            self.n_events += 1
            price = item.price if drift is None else drift.price(item.price, when)
            event = ShopEvent(
                event_type, self.user_id, item.item_id, when, self.prefix + str(self.n_events),
                self.visit, item.category, price, quantity,
            )  # fmt: skip
            if oracle is None:
                p = None
            elif i < len(actions) - 1:
                p = 1.0  # the rest of this checkout follows within seconds
            else:
                horizon = self.world.config.horizon_ms
                p = oracle.probability(self.segment, self.state, when, when + horizon)
            ceiling = None if self.posterior is None else self.posterior.observe(event)
            events.append(SimulatedEvent(event, p, ceiling))
        self.t = float(ts + (len(actions) - 1) * CHECKOUT_STEP_MS)
        return events


def shopper_events(world: World, index: int, newcomer: bool = False) -> Iterator[SimulatedEvent]:
    """One shopper's events in time order, each with its oracle and ceiling probabilities
    when enabled (the ceiling: the Bayes filter of this shopper's visible events)."""
    shopper = Shopper(world, index, newcomer)
    while not shopper.ended and shopper.sample() is not None:
        yield from shopper.fire()


def simulate(config: SimulationConfig, drift: Drift | None = None) -> Iterator[SimulatedEvent]:
    """Every shopper's events merged into one stream in global time order (lazy); with a
    ``drift``, the world changes at its moment (model.simulate.drift)."""
    world = build_world(config, drift)
    heap: list[tuple[int, int, SimulatedEvent, Iterator[SimulatedEvent]]] = []
    newcomers = 0 if drift is None else drift.newcomers(config.n_users)
    for index in range(config.n_users + newcomers):
        stream = shopper_events(world, index, newcomer=index >= config.n_users)
        first = next(stream, None)
        if first is not None:
            heap.append((first.event.ts, index, first, stream))
    heapq.heapify(heap)
    while heap:
        _, index, current, stream = heap[0]
        yield current
        following = next(stream, None)
        if following is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (following.event.ts, index, following, stream))
