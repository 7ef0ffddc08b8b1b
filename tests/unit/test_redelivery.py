"""Redelivered records change nothing; a non-finite score changes no state; format 3 reads."""

import random
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch

from model.serving.export import load_model
from model.serving.scorer import SequenceScorer
from model.serving.user_state import UserState, decode_state, encode_state
from streams.worker.scoring_step import BatchResult, InputRecord, StepConfig, score_batch

T0 = 1_733_300_000_000
NOW_MS = T0 + 10 * 86_400_000
CONFIG = StepConfig(max_event_bytes=16_384, horizon_ms=1)


@pytest.fixture(scope="module")
def scorer(untrained_model: Path) -> SequenceScorer:
    return SequenceScorer(load_model(untrained_model))


def stream(n: int, users: int, seed: int = 0) -> list[InputRecord]:
    """Records of one topic, two partitions (user -> partition), offsets per partition."""
    rng = random.Random(seed)
    offsets = [0, 0]
    records = []
    for i in range(n):
        user = f"u{rng.randrange(users)}"
        partition = int(user[1:]) % 2
        body = {
            "event_type": rng.choice(["view", "view", "add_to_cart", "purchase"]),
            "user_id": user,
            "item_id": str(rng.randrange(20)),
            "ts": T0 + i * 1000,
            "price": rng.choice([3.5, 120.0, 999.0]),
        }
        records.append(
            InputRecord(
                "events",
                partition,
                offsets[partition],
                user.encode(),
                orjson.dumps(body),
                None,
                0.0,
            )
        )
        offsets[partition] += 1
    return records


class Table:
    """The state table as the worker keeps it: bytes per user, written after each batch."""

    def __init__(self, scorer: SequenceScorer) -> None:
        self.scorer = scorer
        self.data: dict[str, bytes] = {}

    def run(self, records: list[InputRecord], scorer: SequenceScorer | None = None) -> BatchResult:
        result = score_batch(records, self.data.get, scorer or self.scorer, CONFIG, NOW_MS)
        for user, (_, state) in result.states.items():
            self.data[user] = state
        return result


def scores_by_offset(result: BatchResult) -> dict[tuple[int, int], tuple[float, float | None]]:
    return {
        (s.record.partition, s.record.offset): (s.score.purchase, s.score.cart_abandon)
        for s in result.scored
    }


def test_redelivered_records_change_no_state_and_no_score(scorer: SequenceScorer) -> None:
    records = stream(600, 25)
    clean = Table(scorer)
    clean_scores: dict[tuple[int, int], tuple[float, float | None]] = {}
    for start in range(0, 600, 50):
        clean_scores.update(scores_by_offset(clean.run(records[start : start + 50])))

    # A worker that re-reads from an earlier commit, twice: overlapping windows of input.
    replayed = Table(scorer)
    seen: dict[tuple[int, int], tuple[float, float | None]] = {}
    redelivered = 0
    for start, stop in [(0, 200), (120, 380), (100, 600), (0, 600)]:
        for s in range(start, stop, 40):
            result = replayed.run(records[s : min(s + 40, stop)])
            redelivered += len(result.redelivered)
            for key, value in scores_by_offset(result).items():
                assert key not in seen, f"{key} scored twice"
                seen[key] = value
    assert redelivered == 80 + 280 + 600
    assert seen.keys() == clean_scores.keys()
    worst = max(abs(seen[k][0] - clean_scores[k][0]) for k in seen)
    assert worst <= 1e-6
    assert replayed.data.keys() == clean.data.keys()
    for user, raw in replayed.data.items():
        assert_same_state(
            decode_state(raw, scorer.n_features), decode_state(clean.data[user], scorer.n_features)
        )


def assert_same_state(got: UserState, want: UserState) -> None:
    """Same events, encoder and applied offsets; network state equal up to float rounding
    (batches of other shapes sum in another order)."""
    assert got.sequence == want.sequence and got.applied == want.applied
    assert got.encoder.n_events == want.encoder.n_events
    assert got.encoder.cart == want.encoder.cart
    for a, b in ((got.h, want.h), (got.c, want.c), (got.window, want.window)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_a_batch_of_only_redeliveries_writes_no_state(scorer: SequenceScorer) -> None:
    records = stream(40, 5)
    table = Table(scorer)
    table.run(records)
    again = table.run(records)
    assert not again.scored and not again.states and len(again.redelivered) == 40


class PoisonOnHighPrice(torch.nn.Module):
    """Wraps the real network; events whose log-price feature is large poison the LSTM state
    (and, with ``scores_too``, come out as NaN themselves)."""

    def __init__(self, inner: torch.jit.ScriptModule, scores_too: bool) -> None:
        super().__init__()
        self.inner = inner
        self.scores_too = scores_too

    def run(
        self, x: torch.Tensor, window: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        probs, window, h, c = self.inner.run(x, window, h, c)
        poisoned = x[:, :, 5] > 1.1  # log1p(price) / 6 > 1.1: price above ~735
        if bool(poisoned.any()):
            h = torch.where(poisoned.any(dim=1, keepdim=True), torch.nan, h)
            if self.scores_too:
                probs = torch.where(poisoned.unsqueeze(-1), torch.nan, probs)
        return probs, window, h, c


@pytest.mark.parametrize("scores_too", [True, False], ids=["nan-score", "nan-state-only"])
def test_a_non_finite_score_is_a_dead_letter_and_the_state_is_kept(
    untrained_model: Path, scores_too: bool
) -> None:
    model = load_model(untrained_model)
    clean_scorer = SequenceScorer(model)
    poisoned_scorer = SequenceScorer(model)
    poisoned_scorer.module = PoisonOnHighPrice(model.module, scores_too)
    records = stream(300, 6, seed=3)
    poisoned = Table(poisoned_scorer)
    results = [poisoned.run(records[s : s + 30]) for s in range(0, 300, 30)]
    dead = [d for r in results for d in r.dead_letters]
    bad = {(d.record.partition, d.record.offset) for d in dead}
    assert dead and all(d.reason == "non_finite_score" for d in dead)
    assert bad == {(r.partition, r.offset) for r in records if b'"price":999.0' in r.value}
    # The same stream without the poisoned events, scored by the clean model, gives the same
    # scores and the same final states: the poisoned events changed nothing.
    clean = Table(clean_scorer)
    kept = [r for r in records if (r.partition, r.offset) not in bad]
    expected: dict[tuple[int, int], tuple[float, float | None]] = {}
    for s in range(0, len(kept), 30):
        expected.update(scores_by_offset(clean.run(kept[s : s + 30])))
    got = {k: v for r in results for k, v in scores_by_offset(r).items()}
    assert got.keys() == expected.keys()
    assert max(abs(got[k][0] - expected[k][0]) for k in got) <= 1e-6
    for user, raw in poisoned.data.items():
        state = decode_state(raw, clean_scorer.n_features)
        assert np.isfinite(state.h).all()
        reference = decode_state(clean.data[user], clean_scorer.n_features)
        assert state.sequence == reference.sequence


def format3(raw: bytes) -> bytes:
    """A format-4 state with no applied offsets, written as format 3 would have been."""
    from model.serving.user_state import EncoderState
    from model.serving.user_state.layout import _layout

    v3, v4 = (_layout(EncoderState, n).header.size for n in (3, 4))
    assert raw[v4 - 1] == 0
    return bytes([3]) + raw[1:v3] + raw[v4:]


def test_format_3_states_are_read_with_their_history(scorer: SequenceScorer) -> None:
    table = Table(scorer)
    table.run(stream(50, 1))
    state = decode_state(table.data["u0"], scorer.n_features)
    state.applied = {}
    old = format3(encode_state(state))
    read = decode_state(old, scorer.n_features)
    assert read.sequence == state.sequence and read.applied == {}
    assert np.array_equal(read.h, state.h) and read.encoder.n_events == 50
    assert encode_state(read) == encode_state(state)


def test_applied_offsets_round_trip_and_stay_bounded(scorer: SequenceScorer) -> None:
    state = scorer.new_state(0)
    for source in range(40):
        state.mark_applied(source, source * 10)
    state.mark_applied(30, 999)
    read = decode_state(encode_state(state), scorer.n_features)
    assert len(read.applied) == 16 and read.applied[30] == 999
    assert read.already_applied(30, 999) and not read.already_applied(30, 1000)
    assert not read.already_applied(0, 0)  # evicted: treated as new
