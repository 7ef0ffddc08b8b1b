"""The simulator against statistics (3,000 shoppers): a calibrated oracle, a Monte Carlo check of
it, and a signal the shared encoder's features can learn."""

import random
from collections import defaultdict

import numpy as np
import pytest

from model.serving.user_state import encode_events
from model.simulate import (
    SimulatedEvent,
    SimulationConfig,
    simulate,
    simulate_n_events,
)
from model.simulate.oracle import PurchaseOracle
from model.simulate.shopper import (
    SEGMENTS,
    jump_table,
    purchases_within,
    state_index,
)
from schemas.units import DAY_MS


@pytest.fixture(scope="module")
def calibration_run() -> tuple[SimulationConfig, list[SimulatedEvent]]:
    config = SimulationConfig(n_users=3000, days=8, seed=1)
    return config, list(simulate(config))


def purchase_within(events: list[SimulatedEvent], horizon_ms: int, end_ms: int) -> np.ndarray:
    """Empirical labels from the events alone: 1/0, or -1 where the horizon passes the end."""
    labels = np.full(len(events), -1.0)
    next_purchase: dict[str, int] = {}
    for i in range(len(events) - 1, -1, -1):
        event = events[i].event
        upcoming = next_purchase.get(event.user_id, -1)
        if event.ts + horizon_ms <= end_ms:
            labels[i] = 1.0 if 0 <= upcoming <= event.ts + horizon_ms else 0.0
        if event.event_type == "purchase":
            next_purchase[event.user_id] = event.ts
    return labels


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum formula (ties get mid-ranks)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores[np.diff(np.sort(scores), prepend=np.nan) == 0]):
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_oracle_matches_monte_carlo_of_the_hidden_chain() -> None:
    oracle = PurchaseOracle()
    rng = random.Random(11)
    start = SimulationConfig().start_ms
    cases = [  # segment, in a visit, intent, cart, time of day
        (0, 1, 0, 0, 3 * 3_600_000 + 123),
        (1, 1, 2, 1, 19 * 3_600_000 + 777),
        (2, 0, 3, 2, 1 * 3_600_000 + 5),
    ]
    n = 3000
    for segment, active, intent, cart, offset in cases:
        state = state_index(active, intent, cart)
        table = jump_table(SEGMENTS[segment])
        t0 = start + offset
        exact = oracle.probability(segment, state, t0, t0 + DAY_MS)
        hits = sum(purchases_within(rng, table, state, t0, t0 + DAY_MS) for _ in range(n))
        error = (max(exact * (1 - exact), 0.01) / n) ** 0.5
        assert abs(hits / n - exact) < 4 * error, (segment, state, exact, hits / n)


def test_oracle_is_calibrated_against_simulated_outcomes(
    calibration_run: tuple[SimulationConfig, list[SimulatedEvent]],
) -> None:
    config, events = calibration_run
    labels = purchase_within(events, config.horizon_ms, config.end_ms)
    known = labels >= 0
    oracle = np.array([e.oracle_purchase for e in events])[known]
    outcome = labels[known]
    assert abs(oracle.mean() - outcome.mean()) < 0.015
    deciles = np.array_split(np.argsort(oracle, kind="stable"), 10)
    # With a 20 h oracle against these 24 h outcomes some decile is off by > 0.04.
    for members in deciles:
        assert abs(oracle[members].mean() - outcome[members].mean()) < 0.03
    assert outcome[deciles[0]].mean() < 0.05 and outcome[deciles[-1]].mean() > 0.7
    assert auc(oracle, outcome) > 0.85


def test_observable_features_carry_much_of_the_signal(
    calibration_run: tuple[SimulationConfig, list[SimulatedEvent]],
) -> None:
    """A linear model on the shared encoder's features, one event at a time, beats chance well
    but stays below the oracle, which also sees the hidden intent."""
    config, events = calibration_run
    labels = purchase_within(events, config.horizon_ms, config.end_ms)
    by_user: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(events):
        by_user[e.event.user_id].append(i)
    rows, targets, oracle, train = [], [], [], []
    for u, positions in enumerate(by_user.values()):
        features, _ = encode_events([events[i].event for i in positions])
        for row, i in zip(features, positions, strict=True):
            if labels[i] >= 0:
                rows.append(row)
                targets.append(labels[i])
                oracle.append(events[i].oracle_purchase)
                train.append(u % 2 == 0)
    x = np.hstack([np.asarray(rows), np.ones((len(rows), 1))])
    y, fit = np.asarray(targets), np.asarray(train)
    weights = np.linalg.lstsq(x[fit], y[fit], rcond=None)[0]
    held_out = auc(x[~fit] @ weights, y[~fit])
    assert 0.7 < held_out < auc(np.asarray(oracle)[~fit], y[~fit]) - 0.03


def test_simulate_n_events_gives_exactly_n_in_order() -> None:
    events = list(simulate_n_events(5000, n_users=2000, seed=5))
    assert len(events) == 5000 and len({e.event.user_id for e in events}) > 500
    assert [e.event.ts for e in events] == sorted(e.event.ts for e in events)
    assert events == list(simulate_n_events(5000, n_users=2000, seed=5))
    assert all(e.oracle_purchase is None for e in events)
