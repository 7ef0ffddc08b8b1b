"""The action state's bytes: round trips exactly, refuses anything else, and its size."""

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from schemas.events import EVENT_TYPES
from schemas.units import MINUTE_MS
from streams.worker.actions.decide import on_propensity, on_time
from streams.worker.actions.policy import load_policy
from streams.worker.actions.state import ActionState, Decision, PendingTrigger, ScoredEvent
from streams.worker.actions.state_codec import (
    ACTION_STATE_FORMAT,
    ActionStateFormatError,
    decode_action_state,
    encode_action_state,
    holds_trigger,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = 1_790_000_000_000

FULL = ActionState(
    user_id="shopper-é-42",
    last_decided=(("cart_reminder", T0), ("nudge", T0 + 5)),
    day=739_880,
    day_count=2,
    pending=PendingTrigger(
        ScoredEvent("ev-9", "remove_from_cart", T0 + 9, "m1", 0.25, None, None, None), T0 + 9
    ),
    held=(
        Decision("nudge", "ab" * 16, "shopper-é-42", "control", T0, T0 + 99, "ev-1", "m1",
                 0.7, 0.8125, "purchase 0.70 >= 0.5 on add_to_cart"),
        Decision("cart_reminder", "cd" * 16, "shopper-é-42", "treatment", T0 + 1, T0 + 100,
                 "ev-2", "m2", 0.1, None, "x"),
    ),
)  # fmt: skip


@pytest.mark.parametrize(
    "state",
    [
        ActionState("u"),
        FULL,
        ActionState(
            "u",
            pending=PendingTrigger(
                ScoredEvent("e", "add_to_cart", 5, "m", 1.0, 0.0, 3, 120.5), 5 + MINUTE_MS
            ),
        ),
    ],
)
def test_round_trip(state: ActionState) -> None:
    assert decode_action_state(encode_action_state(state)) == state


def test_the_header_says_whether_a_trigger_or_a_held_decision_is_stored() -> None:
    cases = [ActionState("u"), FULL, replace(FULL, pending=None), replace(FULL, held=())]
    for state in cases:
        expected = state.pending is not None or bool(state.held)
        assert holds_trigger(encode_action_state(state)) is expected
    assert not holds_trigger(encode_action_state(replace(FULL, pending=None, held=())))


def test_unknown_bytes_are_refused() -> None:
    raw = encode_action_state(FULL)
    with pytest.raises(ActionStateFormatError, match="format"):
        decode_action_state(bytes([ACTION_STATE_FORMAT + 1]) + raw[1:])
    with pytest.raises(ActionStateFormatError):
        decode_action_state(raw[:-3])
    with pytest.raises(ActionStateFormatError, match="after the action state"):
        decode_action_state(raw + b"\0")
    for junk in (b"", b"\x01", b'{"user_id": "u"}'):
        with pytest.raises(ValueError):
            decode_action_state(junk)


def test_bytes_per_user_under_the_example_policy() -> None:
    """Feeds random propensities through deploy/policy.toml and measures the stored states."""
    policy = load_policy(REPO_ROOT / "deploy" / "policy.toml")
    rng = random.Random(7)
    states = {f"user-{i:06d}": ActionState(f"user-{i:06d}") for i in range(500)}
    ts = T0
    for n in range(5000):
        user = rng.choice(list(states))
        ts += rng.randrange(1, 20_000)
        in_cart = rng.random() < 0.6
        record = {
            "user_id": user,
            "scores": {
                "purchase": rng.random(),
                "cart_abandon": rng.random() if in_cart else None,
            },
            "cart_items": rng.randrange(1, 5) if in_cart else 0,
            "cart_value": round(rng.uniform(5, 300), 2) if in_cart else 0.0,
            "model_version": "2026-12-01T10:00:00Z-3f2a",
            "event_id": f"clicks/3/{n + 10_000_000}",
            "event_type": rng.choice(EVENT_TYPES),
            "event_ts": ts,
        }
        states[user] = on_propensity(states[user], record, policy).state
    states = {u: on_time(s, ts, policy).state for u, s in states.items()}
    sizes = []
    for state in states.values():
        raw = encode_action_state(state)
        assert decode_action_state(raw) == state
        if not state.empty:
            sizes.append(len(raw))
    with_pending = [len(encode_action_state(s)) for s in states.values() if s.pending is not None]
    print(
        f"action state: {len(sizes)} of {len(states)} users hold state; bytes per user "
        f"mean {np.mean(sizes):.0f}, max {max(sizes)}; with a pending trigger "
        f"mean {np.mean(with_pending):.0f} ({len(with_pending)} users)"
    )
    assert sizes and with_pending
