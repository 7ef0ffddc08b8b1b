"""The ceiling: the exact Bayes filter of the simulated shopper from visible events only."""

import random
from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from model.simulate import SimulatedEvent, SimulationConfig, simulate
from model.simulate.behaviour import Basket, item_likelihoods
from model.simulate.catalogue import build_catalogue
from model.simulate.ceiling import CeilingModel, ShopperPosterior
from schemas.events import ShopEvent

CONFIG = SimulationConfig(n_users=1000, days=5, seed=21)


@pytest.fixture(scope="module")
def run() -> list[SimulatedEvent]:
    return list(simulate(CONFIG))


def outcomes(events: list[SimulatedEvent], config: SimulationConfig) -> np.ndarray:
    """1/0 purchase within the horizon after each event, -1 where the data ends too soon."""
    labels = np.full(len(events), -1.0)
    upcoming: dict[str, int] = {}
    for i in range(len(events) - 1, -1, -1):
        event = events[i].event
        if event.ts + config.horizon_ms <= config.end_ms:
            nxt = upcoming.get(event.user_id, -1)
            labels[i] = float(0 <= nxt <= event.ts + config.horizon_ms)
        if event.event_type == "purchase":
            upcoming[event.user_id] = event.ts
    return labels


def test_ceiling_is_the_oracle_averaged_over_what_the_events_cannot_show(
    run: list[SimulatedEvent],
) -> None:
    """E[oracle | visible history] = ceiling: within every decile of the ceiling the mean
    oracle equals the mean ceiling. A filter that ignored some evidence, or used a wrong
    likelihood, would be off in the tails."""
    oracle = np.array([e.oracle_purchase for e in run])
    ceiling = np.array([e.ceiling_purchase for e in run])
    assert abs(oracle.mean() - ceiling.mean()) < 0.005
    for members in np.array_split(np.argsort(ceiling, kind="stable"), 10):
        assert abs(oracle[members].mean() - ceiling[members].mean()) < 0.012
    assert ceiling.min() >= 0.0 and ceiling.max() <= 1.0


def test_ceiling_ranks_outcomes_between_a_visible_cue_and_the_oracle(
    run: list[SimulatedEvent],
) -> None:
    """Calibration against outcomes follows from the test above and the oracle's own
    calibration test (tests/unit/test_simulate.py); outcomes of one shopper are correlated,
    so a run this small checks the ranking, not the calibration, against them."""
    labels = outcomes(run, CONFIG)
    known = labels >= 0
    y = labels[known]
    ceiling = np.array([e.ceiling_purchase for e in run])[known]
    oracle = np.array([e.oracle_purchase for e in run])[known]
    cart_only = np.array([e.event.event_type == "add_to_cart" for e in run])[known]
    assert roc_auc_score(y, cart_only) + 0.1 < roc_auc_score(y, ceiling) < roc_auc_score(y, oracle)


def fresh(basket: Basket) -> Basket:
    return Basket(basket.catalogue, basket.need, list(basket.recent), dict(basket.cart))


def test_item_likelihoods_match_the_basket_that_samples_the_items() -> None:
    """Each choice's likelihood sums to 1 over the catalogue and matches sampled frequencies."""
    catalogue = build_catalogue(400, seed=3)
    rng = random.Random(5)
    basket = Basket(catalogue, need=2)
    for _ in range(4):
        basket.view(rng, 2, interest=False)
    basket.add(rng)
    everything = [item for group in catalogue.items_by_category for item in group]
    need, draws = basket.need, 40_000
    for intent in (1, 3):
        likes = [item_likelihoods(catalogue, i, basket.recent, basket.cart) for i in everything]
        for name, sample in (
            ("view", lambda b, k=intent: b.view(rng, k, interest=False)),
            ("interest_view", lambda b, k=intent: b.view(rng, k, interest=True)),
            ("unheld", lambda b: b.unheld(rng)),
            ("wish", lambda b: b.wish(rng)),
        ):
            arrays = [getattr(like, name) for like in likes]
            exact = np.array([a[need, intent] if a.ndim == 2 else a[need] for a in arrays])
            assert exact.sum() == pytest.approx(1.0, abs=1e-9), name
            counts = Counter(sample(fresh(basket)).item_id for _ in range(draws))
            seen = np.array([counts[i.item_id] / draws for i in everything])
            assert np.abs(seen - exact).max() < 0.01, name


def test_an_impossible_event_is_refused() -> None:
    catalogue = build_catalogue(200, seed=1)
    posterior = ShopperPosterior(CeilingModel(catalogue, 86_400_000), CONFIG.start_ms)
    item = catalogue.items_by_category[0][0]
    removal = ShopEvent(
        "remove_from_cart", "u1", item.item_id, CONFIG.start_ms + 1000, "e1", "s1",
        item.category, item.price, 1,
    )  # fmt: skip
    with pytest.raises(ValueError, match="impossible"):
        posterior.observe(removal)  # nothing was ever added to the cart
