"""Incremental scoring equals full-sequence scoring; late events, TTL and model changes."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from model.serving.export import LoadedModel, load_model
from model.serving.scorer import SequenceScorer, score_offline
from model.serving.user_state import UserState, decode_state, encode_events, encode_state
from schemas.events import EVENT_TYPES, ShopEvent

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def model(untrained_model: Path) -> LoadedModel:
    return load_model(untrained_model)


def random_stream(n_events: int, n_users: int, seed: int) -> list[ShopEvent]:
    rng = random.Random(seed)
    ts = T0
    events = []
    for i in range(n_events):
        ts += rng.randrange(0, 90_000)
        events.append(
            ShopEvent(
                event_type=rng.choice(EVENT_TYPES),
                user_id=f"u{rng.randrange(n_users)}",
                item_id=str(rng.randrange(30)),
                ts=ts,
                event_id=str(i),
                session_id=f"s{rng.randrange(4)}",
                price=round(rng.uniform(0, 300), 2),
                quantity=rng.choice([None, 1, 2, 5]),
                category=rng.choice([None, "a.b", "a.c", "d", "e", "f", "g", "h", "i", "j"]),
            )
        )
    return events


def full_sequence_scores(model: LoadedModel, events: list[ShopEvent]) -> np.ndarray:
    features, _ = encode_events(events)
    with torch.inference_mode():
        return model.module(torch.from_numpy(features).unsqueeze(0))[0].numpy()


@pytest.mark.parametrize("batch_size", [1, 7, 256])
def test_incremental_equals_full_sequence_on_long_streams(
    model: LoadedModel, batch_size: int
) -> None:
    events = random_stream(6000, 40, seed=batch_size)
    scorer = SequenceScorer(model, window_size=10_000, ttl_ms=10**12)
    scores = score_offline(scorer, events, batch_size=batch_size)
    assert scorer.rebuilds == 0
    by_user: dict[str, list[int]] = {}
    for i, e in enumerate(events):
        by_user.setdefault(e.user_id, []).append(i)
    worst = 0.0
    for indices in by_user.values():
        full = full_sequence_scores(model, [events[i] for i in indices])
        inc = np.array([scores[i].purchase for i in indices])
        worst = max(worst, float(np.abs(full[:, 0] - inc).max()))
        carts = [scores[i].cart_abandon for i in indices]
        for row, cart in zip(full, carts, strict=True):
            assert cart is None or abs(cart - row[1]) < 1e-5
    assert len(max(by_user.values(), key=len)) > 100  # long sequences really were exercised
    assert worst < 1e-5


def test_state_survives_encoding_between_batches(model: LoadedModel) -> None:
    events = random_stream(600, 10, seed=3)
    scorer = SequenceScorer(model, window_size=64)
    direct = score_offline(scorer, events, batch_size=50)
    states: dict[str, UserState] = {}
    via_bytes = []
    for start in range(0, len(events), 50):
        states = {u: decode_state(encode_state(s), scorer.n_features) for u, s in states.items()}
        via_bytes.extend(scorer.score(events[start : start + 50], states, 0))
    assert [s.purchase for s in via_bytes] == pytest.approx([s.purchase for s in direct], abs=1e-6)


def test_late_event_is_placed_by_event_time(model: LoadedModel) -> None:
    scorer = SequenceScorer(model, window_size=64)
    base = [ShopEvent("view", "u", str(i), T0 + i * 60_000) for i in range(5)]
    late = ShopEvent("add_to_cart", "u", "9", T0 + 90_000)  # between the 2nd and 3rd
    states: dict[str, UserState] = {}
    scorer.score(base, states, 0)
    score = scorer.score([late], states, 0)[0]
    assert scorer.rebuilds == 1
    assert list(states["u"].sequence_array()["ts"]) == sorted(e.ts for e in [*base, late])
    in_order = sorted([*base, late], key=lambda e: e.ts)
    expected = full_sequence_scores(model, in_order)[-1]
    assert score.purchase == pytest.approx(float(expected[0]), abs=1e-5)
    assert score.cart_items == 1


def test_window_keeps_the_last_n_events(model: LoadedModel) -> None:
    scorer = SequenceScorer(model, window_size=8)
    states: dict[str, UserState] = {}
    scorer.score([ShopEvent("view", "u", str(i), T0 + i) for i in range(20)], states, 0)
    assert states["u"].length == 8
    assert int(states["u"].sequence_array()["ts"][0]) == T0 + 12


def test_idle_user_starts_fresh_after_ttl(model: LoadedModel) -> None:
    scorer = SequenceScorer(model, window_size=64, ttl_ms=3_600_000)
    states: dict[str, UserState] = {}
    scorer.score([ShopEvent("add_to_cart", "u", "1", T0)], states, 0)
    later = scorer.score([ShopEvent("view", "u", "2", T0 + 2 * 3_600_000)], states, 0)[0]
    assert states["u"].length == 1
    assert later.cart_items == 0


def test_new_model_version_rebuilds_from_the_sequence(model: LoadedModel) -> None:
    scorer = SequenceScorer(model, window_size=64)
    states: dict[str, UserState] = {}
    events = [ShopEvent("view", "u", str(i), T0 + i * 1000) for i in range(6)]
    scorer.score(events[:5], states, 0)
    states["u"].model_tag ^= 1  # as if stored by another model version
    score = scorer.score(events[5:], states, 0)[0]
    assert scorer.rebuilds == 1
    assert score.purchase == pytest.approx(
        float(full_sequence_scores(model, events)[-1][0]), abs=1e-5
    )


def test_corrupt_state_is_ignored_not_fatal(model: LoadedModel) -> None:
    scorer = SequenceScorer(model)
    assert scorer.load(b"\x09garbage") is None
    assert scorer.load(None) is None


def test_state_bytes_round_trip_exactly_and_stay_bounded(model: LoadedModel) -> None:
    events = random_stream(2000, 5, seed=11)
    scorer = SequenceScorer(model, window_size=64, ttl_ms=10**12)
    states: dict[str, UserState] = {}
    scorer.score(events, states, 0)
    for state in states.values():
        raw = encode_state(state)
        assert encode_state(decode_state(raw, scorer.n_features)) == raw
        assert state.length == 64
        assert len(state.encoder.recent_categories) <= 8
        assert len(state.encoder.session_categories) <= 8
    sizes = sorted(len(encode_state(s)) for s in states.values())
    print(f"state bytes per user (64-event window, hidden 16): {sizes}")
    # Bounded whatever the history: header, 32 cart items, 16 items, 8 + 8 categories,
    # the convolution context, h and c, and 64 records.
    bound = 51 + 32 * 12 + 16 * 4 + 8 * 4 + 8 * 8 + 2 * scorer.n_features * 4 + 2 * 16 * 4
    assert sizes[-1] <= bound + 64 * 27
