"""Adding a feature touches the encoder and nothing else.

A subclass of THE encoder, in this file, adds a feature that needs memory of its own (the
user's purchases so far). Its features, their count, the stored state's bytes, the state
machine and the scorer all follow, without an edit outside the encoder: if any of them
assumed today's features, a test here fails.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from model.network import PropensityNet
from model.serving.config import ModelConfig
from model.serving.export import LoadedModel, ModelMeta
from model.serving.scorer import SequenceScorer, score_offline
from model.serving.user_state import (
    FEATURE_NAMES,
    FEATURES,
    N_FEATURES,
    PURCHASE,
    EncoderState,
    EventRecord,
    FeatureSpec,
    StateMachine,
    decode_state,
    encode_state,
    record_from_event,
)
from model.serving.user_state.encoder import STORED
from tests.unit.test_state_pins import FORMAT_3, N_FEATURES_AT_PIN, shopper_events


@dataclass(slots=True)
class PurchaseMemory(EncoderState):
    """THE encoder's memory and one more stored number."""

    purchases: int = field(default=0, metadata={STORED: "I"})


class WithPurchases(FeatureSpec):
    """THE encoder and one more feature: log1p(purchases so far) / 3."""

    version = FeatureSpec.version + 1
    names = (*FeatureSpec.names, "log_purchases_total")
    state_type = PurchaseMemory

    def step(self, state: EncoderState, record: EventRecord) -> Sequence[float]:
        row = super().step(state, record)
        assert isinstance(state, PurchaseMemory)
        state.purchases += record.event_type == PURCHASE
        return [*row, math.log1p(state.purchases) / 3.0]


SPEC = WithPurchases()
RECORDS = [record_from_event(e) for e in shopper_events()]


def test_the_feature_count_and_spec_follow() -> None:
    assert SPEC.n_features == N_FEATURES + 1 == len(SPEC.names)
    assert SPEC.names[-1] == "log_purchases_total" and SPEC.names[:-1] == FEATURE_NAMES
    assert SPEC.spec_hash() != FEATURES.spec_hash()
    assert isinstance(SPEC.new_state(), PurchaseMemory)


def test_encoding_follows_and_leaves_the_other_features_alone() -> None:
    features, memory, _ = SPEC.fold(RECORDS)
    today, _, _ = FEATURES.fold(RECORDS)
    assert features.shape == (len(RECORDS), N_FEATURES + 1)
    np.testing.assert_array_equal(features[:, :-1], today)
    purchases = np.cumsum([r.event_type == PURCHASE for r in RECORDS])
    np.testing.assert_array_equal(features[:, -1], np.float32(np.log1p(purchases) / 3.0))
    assert isinstance(memory, PurchaseMemory) and memory.purchases == purchases[-1] > 0


def machine(**kwargs: int) -> StateMachine:
    return StateMachine(model_tag=7, context=2, hidden=4, features=SPEC, **kwargs)


def test_the_stored_state_keeps_the_new_memory_and_round_trips() -> None:
    states = machine(window_size=16)
    state = states.new(0)
    for record in RECORDS:
        state = states.apply(state, record, 0).state
    assert isinstance(state.encoder, PurchaseMemory) and state.encoder.purchases > 0
    state.window = np.arange(2 * SPEC.n_features, dtype=np.float32).reshape(2, -1)
    raw = encode_state(state)
    read = decode_state(raw, SPEC.n_features, SPEC.state_type)
    assert read.encoder == state.encoder  # the new field included
    assert read.window.shape == (2, N_FEATURES + 1)
    np.testing.assert_array_equal(read.window, state.window)
    assert encode_state(read) == raw
    loaded = states.load(raw)
    assert loaded is not None and loaded.encoder == state.encoder and loaded.model_tag == 7


def test_an_older_format_without_the_new_memory_is_read_and_rebuilt() -> None:
    read = decode_state(FORMAT_3, N_FEATURES_AT_PIN, SPEC.state_type)
    assert isinstance(read.encoder, PurchaseMemory) and read.encoder.purchases == 0
    assert read.model_tag == 0  # rebuilt from the sequence when next applied
    assert read.encoder.n_events == decode_state(FORMAT_3, N_FEATURES_AT_PIN).encoder.n_events


def test_a_rebuild_recomputes_the_new_memory_from_the_sequence() -> None:
    states = machine(window_size=len(RECORDS))
    state = states.new(0)
    for record in RECORDS[:-1]:
        state = states.apply(state, record, 0).state
    state.model_tag = 0  # as if stored by another model
    applied = states.apply(state, RECORDS[-1], 0)
    assert applied.rebuilt
    features, memory, _ = SPEC.fold(RECORDS)
    assert applied.state.encoder == memory
    np.testing.assert_array_equal(applied.rows, features)


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    """A PropensityNet that reads the extended features (not exported: the worker's loader
    accepts THE encoder's features only, which is the point of its spec hash)."""
    torch.manual_seed(5)
    config = ModelConfig(n_features=SPEC.n_features, conv_channels=8, hidden_size=8)
    meta = ModelMeta("with-purchases", SPEC.spec_hash(), config.horizon_ms, config.to_dict())
    return LoadedModel(PropensityNet(config).eval(), meta, Path("in-memory"))  # type: ignore[arg-type]


def test_the_scorer_runs_the_extended_features_incrementally(model: LoadedModel) -> None:
    scorer = SequenceScorer(model, window_size=1_000, features=SPEC)
    events = [replace(e, user_id=f"u{i % 3}") for i, e in enumerate(shopper_events())]
    scores = score_offline(scorer, events, batch_size=7)
    for user in ("u0", "u1", "u2"):
        mine = [e for e in events if e.user_id == user]
        features, _, _ = SPEC.fold(record_from_event(e) for e in mine)
        with torch.inference_mode():
            full = model.module(torch.from_numpy(features).unsqueeze(0))[0, :, 0].numpy()
        got = [s.purchase for s, e in zip(scores, events, strict=True) if e.user_id == user]
        np.testing.assert_allclose(got, full, atol=1e-5)


def test_a_model_for_other_features_is_refused(model: LoadedModel) -> None:
    with pytest.raises(ValueError, match="features"):
        SequenceScorer(model)  # THE encoder gives one feature fewer
