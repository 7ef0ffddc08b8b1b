"""The shopper simulator: determinism, order, funnel, and an oracle that is exact and calibrated."""

from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from model.importers import read_jsonl_with_extras
from model.simulate import (
    SimulatedEvent,
    SimulationConfig,
    simulate,
    write_jsonl,
)
from model.simulate.oracle import PurchaseOracle
from model.simulate.shopper import (
    MAX_CART,
    N_INTENT,
    state_index,
)
from schemas.events import event_from_object
from schemas.units import DAY_MS
from streams.cli import main

SMALL = SimulationConfig(n_users=300, days=3, seed=3)


@pytest.fixture(scope="module")
def small_run() -> list[SimulatedEvent]:
    return list(simulate(SMALL))


def test_same_seed_same_events_other_seed_other_events(small_run: list[SimulatedEvent]) -> None:
    assert list(simulate(SMALL)) == small_run
    other = list(simulate(SimulationConfig(n_users=300, days=3, seed=4)))
    assert [e.event for e in other[:50]] != [e.event for e in small_run[:50]]


def test_the_oracle_does_not_change_the_events(small_run: list[SimulatedEvent]) -> None:
    plain = list(simulate(SimulationConfig(n_users=300, days=3, seed=3, with_oracle=False)))
    assert [e.event for e in plain] == [e.event for e in small_run]
    assert all(e.oracle_purchase is None and e.ceiling_purchase is None for e in plain)
    assert all(0.0 <= e.oracle_purchase <= 1.0 for e in small_run if e.oracle_purchase is not None)
    assert all(e.oracle_purchase is not None for e in small_run)


def test_events_are_time_ordered_valid_and_complete(small_run: list[SimulatedEvent]) -> None:
    stamps = [e.event.ts for e in small_run]
    assert stamps == sorted(stamps)
    assert SMALL.start_ms <= stamps[0] and stamps[-1] < SMALL.end_ms
    assert len({e.event.event_id for e in small_run}) == len(small_run)
    for item in small_run:
        event = item.event
        assert event_from_object(orjson.loads(event.to_bytes())) == event
        assert event.session_id and event.category and event.price and event.price > 0
        has_quantity = event.event_type in ("add_to_cart", "remove_from_cart", "purchase")
        assert (event.quantity is not None and event.quantity >= 1) == has_quantity


def test_funnel_has_purchases_removals_wishlists_and_abandoned_carts(
    small_run: list[SimulatedEvent],
) -> None:
    types = Counter(e.event.event_type for e in small_run)
    assert set(types) == {"view", "add_to_cart", "remove_from_cart", "wishlist", "purchase"}
    assert types["view"] > 10 * types["add_to_cart"] > 10 * 0.5 * types["purchase"] > 0
    by_visit: dict[str, list[str]] = defaultdict(list)
    for e in small_run:
        by_visit[e.event.session_id or ""].append(e.event.event_type)
    with_cart = [kinds for kinds in by_visit.values() if "add_to_cart" in kinds]
    abandoned = [kinds for kinds in with_cart if "purchase" not in kinds]
    assert 0.2 * len(with_cart) < len(abandoned) < len(with_cart)
    # Repeat visits: most shoppers who buy have come back at least once before.
    visits_per_user = Counter(visit.rsplit("-", 1)[0] for visit in by_visit)
    assert max(visits_per_user.values()) >= 5


def test_cart_purchases_come_from_the_visible_cart(small_run: list[SimulatedEvent]) -> None:
    by_user: dict[str, list[SimulatedEvent]] = defaultdict(list)
    for e in small_run:
        by_user[e.event.user_id].append(e)
    matched = total = 0
    for events in by_user.values():
        cart: set[str] = set()
        for item in events:
            event = item.event
            if event.event_type == "add_to_cart":
                assert event.item_id not in cart and len(cart) < MAX_CART
                cart.add(event.item_id)
            elif event.event_type == "remove_from_cart":
                cart.discard(event.item_id)
            elif event.event_type == "purchase":
                total += 1
                matched += event.item_id in cart
                cart.discard(event.item_id)
    # The rest are "buy now" purchases and carts filled before the simulated window.
    assert matched > 0.5 * total


def test_activity_follows_a_daily_rhythm(small_run: list[SimulatedEvent]) -> None:
    hours = Counter((e.event.ts // 3_600_000) % 24 for e in small_run)
    evening = sum(hours[h] for h in range(18, 23))
    night = sum(hours[h] for h in range(1, 6))
    assert evening > 4 * night


def test_oracle_matrix_exponentials_are_exact() -> None:
    assert PurchaseOracle().check_accuracy() < 1e-9


def test_oracle_rises_with_intent_and_cart_and_with_the_horizon() -> None:
    oracle = PurchaseOracle()
    t0 = SimulationConfig().start_ms + 20 * 3_600_000
    by_intent = [
        oracle.probability(1, state_index(1, k, 0), t0, t0 + DAY_MS) for k in range(N_INTENT)
    ]
    assert by_intent == sorted(by_intent) and by_intent[-1] > 3 * by_intent[0]
    empty, full = (oracle.probability(1, state_index(1, 2, c), t0, t0 + DAY_MS) for c in (0, 2))
    assert full > empty
    hour = oracle.probability(1, state_index(1, 2, 1), t0, t0 + 3_600_000)
    assert 0 < hour < full and oracle.probability(1, 0, t0, t0) == 0.0


def test_write_jsonl_round_trips_with_the_oracle(
    small_run: list[SimulatedEvent], tmp_path: Path
) -> None:
    path = tmp_path / "sim.jsonl"
    assert write_jsonl(small_run, path) == len(small_run)
    back = list(read_jsonl_with_extras(path))
    assert [event for event, _ in back] == [e.event for e in small_run]
    for (_, extra), item in zip(back, small_run, strict=True):
        assert extra["oracle_purchase"] == pytest.approx(item.oracle_purchase, abs=1e-6)
        assert extra["ceiling_purchase"] == pytest.approx(item.ceiling_purchase, abs=1e-6)


def test_config_rejects_nonsense() -> None:
    makers: list[Callable[[], SimulationConfig]] = [
        lambda: SimulationConfig(n_users=0),
        lambda: SimulationConfig(days=0),
        lambda: SimulationConfig(horizon_ms=10),
        lambda: SimulationConfig(n_items=5),
    ]
    for make in makers:
        with pytest.raises(ValueError):
            make()


def test_cli_simulate_writes_events_with_and_without_oracle(tmp_path: Path) -> None:
    out = tmp_path / "sim.jsonl"
    args = ["simulate", "--out", str(out), "--users", "50", "--days", "2", "--seed", "2"]
    result = CliRunner().invoke(main, [*args, "--horizon-hours", "12", "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert lines and all("oracle_purchase" in line for line in lines)
    assert all(0.0 <= line["ceiling_purchase"] <= 1.0 for line in lines)
    assert "events" in result.output
    result = CliRunner().invoke(main, [*args, "--no-oracle", "--no-progress"])
    assert result.exit_code == 0, result.output
    plain = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    references = {"oracle_purchase", "ceiling_purchase"}
    assert [{k: v for k, v in line.items() if k not in references} for line in lines] == plain
