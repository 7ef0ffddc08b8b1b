"""Shoppers that answer back: without nudges the reactive stream is simulate's, a nudge
changes only the nudged shopper and only after it, and a reacting shopper checks out."""

from collections.abc import Callable

import pytest

from model.simulate import SimulationConfig, simulate
from model.simulate.config import SimulatedEvent
from model.simulate.reaction import Reaction, ReactiveSimulation
from schemas.units import HOUR_MS

CONFIG = SimulationConfig(n_users=200, days=3, seed=11, with_oracle=False)

Policy = Callable[[ReactiveSimulation, SimulatedEvent], None]


def nudge_adds(sim: ReactiveSimulation, item: SimulatedEvent) -> None:
    if item.event.event_type == "add_to_cart":
        sim.nudge(item.event.user_id, item.event.ts)


def run(reaction: Reaction, policy: Policy | None = None) -> list[SimulatedEvent]:
    sim = ReactiveSimulation(CONFIG, reaction)
    out = []
    for item in sim:
        out.append(item)
        if policy is not None:
            policy(sim, item)
    return out


def by_user(events: list[SimulatedEvent]) -> dict[str, list[SimulatedEvent]]:
    users: dict[str, list[SimulatedEvent]] = {}
    for item in events:
        users.setdefault(item.event.user_id, []).append(item)
    return users


def test_without_nudges_the_stream_is_simulates() -> None:
    assert run(Reaction(0.5)) == list(simulate(CONFIG))


def test_nudges_without_effect_change_nothing() -> None:
    assert run(Reaction(0.0), nudge_adds) == list(simulate(CONFIG))


def test_a_nudge_changes_only_the_nudged_shopper_after_the_nudge() -> None:
    plain = by_user(list(simulate(CONFIG)))
    first_add = next(e for e in simulate(CONFIG) if e.event.event_type == "add_to_cart")
    target = first_add.event.user_id

    def nudge_target_once(sim: ReactiveSimulation, item: SimulatedEvent) -> None:
        if item == first_add:
            assert sim.nudge(target, item.event.ts)

    nudged = by_user(run(Reaction(1.0, within_ms=HOUR_MS), nudge_target_once))
    assert {u: evs for u, evs in nudged.items() if u != target} == {
        u: evs for u, evs in plain.items() if u != target
    }
    before = [e for e in plain[target] if e.event.ts <= first_add.event.ts]
    assert nudged[target][: len(before)] == before
    after = nudged[target][len(before) :]
    # effect 1: a purchase within the hour (the shopper's own, or the response's checkout)
    assert after[0].event.event_type == "purchase" or any(
        e.event.event_type == "purchase" and e.event.ts <= first_add.event.ts + HOUR_MS
        for e in after
    )


def test_a_reminded_shopper_buys_within_the_hour_unless_the_cart_empties_first() -> None:
    nudged: dict[str, int] = {}

    def nudge_first_add(sim: ReactiveSimulation, item: SimulatedEvent) -> None:
        event = item.event
        if event.event_type == "add_to_cart" and event.user_id not in nudged:
            nudged[event.user_id] = event.ts
            sim.nudge(event.user_id, event.ts)

    users = by_user(run(Reaction(1.0), nudge_first_add))
    plain = by_user(list(simulate(CONFIG)))

    def within_hour(events: list[SimulatedEvent], t: int, kind: str) -> bool:
        return any(e.event.event_type == kind and t < e.event.ts <= t + HOUR_MS for e in events)

    open_runs = [(u, t) for u, t in nudged.items() if t + HOUR_MS < CONFIG.end_ms]
    bought = [within_hour(users[u], t, "purchase") for u, t in open_runs]
    emptied = [within_hour(users[u], t, "remove_from_cart") for u, t in open_runs]
    assert all(b or e for b, e in zip(bought, emptied, strict=True))
    bought_plain = [within_hour(plain[u], t, "purchase") for u, t in open_runs]
    assert sum(bought) > sum(bought_plain) + 0.3 * len(open_runs)


def test_every_event_stays_in_time_order() -> None:
    events = run(Reaction(1.0), nudge_adds)
    times = [e.event.ts for e in events]
    assert times == sorted(times)
    assert len({e.event.event_id for e in events}) == len(events)


def test_invalid_reaction_and_oracle_are_refused() -> None:
    with pytest.raises(ValueError, match="effect"):
        Reaction(1.5)
    with pytest.raises(ValueError, match="oracle"):
        ReactiveSimulation(SimulationConfig(n_users=5, days=1), Reaction(0.1))
    with pytest.raises(KeyError):
        ReactiveSimulation(CONFIG, Reaction(0.1)).nudge("nobody", 0)
