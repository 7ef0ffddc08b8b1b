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


def shopper_events(world: World, index: int, newcomer: bool = False) -> Iterator[SimulatedEvent]:
    """One shopper's events in time order, each with its oracle and ceiling probabilities
    when enabled (the ceiling: the Bayes filter of this shopper's visible events).

    After a visible event the chain restarts from exactly the event's (whole-millisecond)
    time and the hidden state the oracle is given, so the oracle describes the future this
    generator will actually sample. A checkout's purchases are a second apart; the chain
    resumes after the last one, and the earlier ones have probability 1 (more follow).

    With a drift: a ``newcomer`` is of the drift's new segment and starts at the drift
    moment; after a "conversion" drift jumps follow the drifted tables; after a "prices"
    drift prices are scaled.
    """
    config = world.config
    rng = random.Random(f"{config.seed}/{index}")
    user_id = f"u{index:06d}"
    basket = Basket(world.catalogue)
    segment, state = _start(rng, basket)
    if newcomer:
        segment = len(SEGMENTS)  # build_world put the new segment's table last
    table = world.tables[segment]
    drift = world.drift
    switch_at = drift.at_ms if drift is not None and world.drifted_tables else None
    oracle = world.oracle
    posterior = ShopperPosterior(world.ceiling, config.start_ms) if world.ceiling else None
    end = config.end_ms
    horizon = config.horizon_ms
    prefix = f"sim{config.seed}-{index}-"
    t = float(drift.at_ms if newcomer and drift is not None else config.start_ms)
    n_events = visits = 0
    visit = ""
    while True:
        if switch_at is not None and t >= switch_at:
            table, switch_at = world.drifted_tables[segment], None
        t, kind, state = next_jump(rng, table[state], t)
        if t >= end:
            return
        if kind >= Kind.NEED:  # silent jumps
            if kind == Kind.NEED and _INTENT[state] == 1:
                basket.new_need(rng)
            continue
        ts = int(t)
        t = float(ts)  # the chain restarts from the event's whole millisecond
        if kind == Kind.START:
            visits += 1
            visit = f"{user_id}-{visits}"
        actions = _actions(rng, basket, kind, _INTENT[state])
        for i, (event_type, item, quantity) in enumerate(actions):
            when = ts + i * CHECKOUT_STEP_MS
            if when >= end:
                return
            n_events += 1
            price = item.price if drift is None else drift.price(item.price, when)
            event = ShopEvent(
                event_type, user_id, item.item_id, when, prefix + str(n_events), visit,
                item.category, price, quantity,
            )  # fmt: skip
            if oracle is None:
                p = None
            elif i < len(actions) - 1:
                p = 1.0  # the rest of this checkout follows within seconds
            else:
                p = oracle.probability(segment, state, when, when + horizon)
            ceiling = None if posterior is None else posterior.observe(event)
            yield SimulatedEvent(event, p, ceiling)
        t = float(ts + (len(actions) - 1) * CHECKOUT_STEP_MS)


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
