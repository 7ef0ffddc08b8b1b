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


def build_world(config: SimulationConfig) -> World:
    oracle = PurchaseOracle() if config.with_oracle else None
    tables = tuple(jump_table(segment) for segment in SEGMENTS)
    catalogue = build_catalogue(config.n_items, config.seed)
    ceiling = CeilingModel(catalogue, config.horizon_ms, oracle) if oracle else None
    return World(config, catalogue, tables, oracle, ceiling)


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


def shopper_events(world: World, index: int) -> Iterator[SimulatedEvent]:
    """One shopper's events in time order, each with its oracle and ceiling probabilities
    when enabled (the ceiling: the Bayes filter of this shopper's visible events).

    After a visible event the chain restarts from exactly the event's (whole-millisecond)
    time and the hidden state the oracle is given, so the oracle describes the future this
    generator will actually sample. A checkout's purchases are a second apart; the chain
    resumes after the last one, and the earlier ones have probability 1 (more follow).
    """
    config = world.config
    rng = random.Random(f"{config.seed}/{index}")
    user_id = f"u{index:06d}"
    basket = Basket(world.catalogue)
    segment, state = _start(rng, basket)
    table = world.tables[segment]
    oracle = world.oracle
    posterior = ShopperPosterior(world.ceiling, config.start_ms) if world.ceiling else None
    end = config.end_ms
    horizon = config.horizon_ms
    prefix = f"sim{config.seed}-{index}-"
    t = float(config.start_ms)
    n_events = visits = 0
    visit = ""
    while True:
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
            event = ShopEvent(
                event_type, user_id, item.item_id, when, prefix + str(n_events), visit,
                item.category, item.price, quantity,
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


def simulate(config: SimulationConfig) -> Iterator[SimulatedEvent]:
    """Every shopper's events merged into one stream in global time order (lazy)."""
    world = build_world(config)
    heap: list[tuple[int, int, SimulatedEvent, Iterator[SimulatedEvent]]] = []
    for index in range(config.n_users):
        stream = shopper_events(world, index)
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
