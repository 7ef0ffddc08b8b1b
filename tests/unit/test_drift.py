"""Drift without labels: PSI, the reference histograms, the sliding window, and load_model's
handling of the reference distributions an artifact records."""

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from model.monitoring.drift import PSI_EPSILON, BinRing, DriftWindow, psi
from model.network import PropensityNet
from model.serving.config import HEADS
from model.serving.export import load_model, save_model
from model.serving.reference import (
    DriftReference,
    ReferenceError,
    event_mix,
    reference_from_metrics,
    score_histogram,
)
from schemas.events import EVENT_TYPES
from tests.unit.test_model_artifact import refusal, tiny, with_meta

RNG = np.random.default_rng(11)
REFERENCE_SCORES = RNG.beta(1.0, 8.0, 100_000)  # skewed towards 0, like purchase scores
REFERENCE_TYPES = ["view"] * 90 + ["add_to_cart"] * 4 + ["purchase"] * 3 + ["wishlist"] * 3


def reference() -> DriftReference:
    carts = np.random.default_rng(5).beta(5.0, 2.0, 50_000)
    return DriftReference(
        window="validation",
        scores={
            "purchase": score_histogram(REFERENCE_SCORES),
            "cart_abandon": score_histogram(carts),
        },
        event_mix=event_mix(REFERENCE_TYPES),
        events=100_000,
    )


def test_psi_of_known_cases() -> None:
    # (0.5 - 0.25) ln 2 + (0.5 - 0.75) ln(2/3) = 0.25 ln 3
    assert psi(np.array([50, 50]), np.array([0.25, 0.75])) == pytest.approx(0.25 * math.log(3))
    assert psi(np.array([30, 70]), np.array([0.3, 0.7])) == pytest.approx(0.0)
    # an empty bin counts as PSI_EPSILON, so it is large but finite
    expected = 0.5 * math.log(2) + (0.5 - PSI_EPSILON) * math.log(0.5 / PSI_EPSILON)
    assert psi(np.array([100, 0]), np.array([0.5, 0.5])) == pytest.approx(expected)


def test_psi_of_an_empty_or_tiny_sample_is_nan_not_an_alarm() -> None:
    shares = np.full(10, 0.1)
    assert math.isnan(psi(np.zeros(10), shares))
    assert math.isnan(psi(np.array([5, 4, 5, 5, 5, 5, 5, 5, 5, 5]), shares))  # 49 < 5 per bin
    assert not math.isnan(psi(np.full(10, 5), shares))


def test_decile_edges_give_the_reference_equal_shares() -> None:
    histogram = score_histogram(REFERENCE_SCORES)
    assert histogram.n_bins == 10 and histogram.edges[0] == 0.0 and histogram.edges[-1] == 1.0
    assert np.allclose(histogram.shares, 0.1, atol=1e-3)


def test_tied_scores_merge_bins_and_leave_none_empty() -> None:
    scores = np.concatenate([np.full(600, 0.02), RNG.uniform(0.3, 0.9, 400)])
    histogram = score_histogram(scores)
    assert histogram.n_bins < 10 and min(histogram.shares) > 0
    assert sum(histogram.shares) == pytest.approx(1.0)


def test_bins_cover_the_whole_unit_interval() -> None:
    histogram = score_histogram(REFERENCE_SCORES)
    bins = histogram.bins_of(np.array([0.0, histogram.edges[1], 0.999999, 1.0]))
    assert bins.tolist() == [0, 1, 9, 9]


def test_a_sample_of_the_reference_has_small_psi_a_shifted_one_large() -> None:
    window = DriftWindow(reference(), size=5000)
    fresh = RNG.beta(1.0, 8.0, 5000)
    window.observe(["view"] * 5000, fresh.tolist(), [None] * 5000)
    assert window.figures().score_psi["purchase"] < 0.01
    shifted = DriftWindow(reference(), size=5000)
    shifted.observe(["view"] * 5000, np.minimum(fresh * 1.6, 1.0).tolist(), [None] * 5000)
    assert shifted.figures().score_psi["purchase"] > 0.1


def test_window_is_nan_until_full_and_forgets_what_falls_out() -> None:
    window = DriftWindow(reference(), size=1000)
    window.observe(["purchase"] * 999, [0.9] * 999, [0.5] * 999)
    figures = window.figures()
    assert figures.events == 999
    assert math.isnan(figures.score_psi["purchase"]) and math.isnan(figures.event_mix_psi)
    window.observe(["purchase"], [0.9], [None])
    assert window.figures().score_psi["purchase"] > 1.0  # every score in the top decile
    assert math.isnan(window.figures().score_psi["cart_abandon"])  # 999 cart scores so far
    types = RNG.choice(REFERENCE_TYPES, 1000).tolist()
    window.observe(types, RNG.beta(1.0, 8.0, 1000).tolist(), [None] * 1000)
    figures = window.figures()
    assert figures.score_psi["purchase"] < 0.05 and figures.event_mix_psi < 0.05
    assert figures.events == 1000


def test_event_mix_shift_is_seen() -> None:
    window = DriftWindow(reference(), size=2000)
    types = ["view"] * 1500 + ["add_to_cart"] * 500  # carts 25% instead of 4%, no purchases
    window.observe(types, RNG.beta(1.0, 8.0, 2000).tolist(), [None] * 2000)
    assert window.figures().event_mix_psi > 0.25


@pytest.mark.parametrize("chunks", [[7, 3, 12, 1], [25], [4, 4, 4, 4, 4, 4, 4]])
def test_ring_holds_exactly_the_last_values(chunks: list[int]) -> None:
    ring = BinRing(10, 10)
    seen: list[int] = []
    for n in chunks:
        values = RNG.integers(0, 10, n).astype(np.int16)
        ring.push(values)
        seen.extend(values.tolist())
    assert ring.counts().tolist() == np.bincount(seen[-10:], minlength=10).tolist()


def test_reference_round_trips_through_its_dict() -> None:
    original = reference()
    parsed = reference_from_metrics({"reference": original.to_dict()})
    assert parsed == original
    assert reference_from_metrics({}) is None  # artifacts trained before references


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda r: r["scores"].pop("cart_abandon"), "exactly the heads"),
        (lambda r: r["scores"]["purchase"]["edges"].reverse(), "increase strictly"),
        (lambda r: r["scores"]["purchase"]["shares"].append(0.0), "shares"),
        (lambda r: r["scores"]["purchase"]["shares"].__setitem__(0, 0.5), "summing to 1"),
        (lambda r: r["event_mix"].pop("wishlist"), "exactly the types"),
        (lambda r: r["scores"]["purchase"].update(edges="0,1"), "finite numbers"),
        (lambda r: r.update(events=-3), "positive integer"),
    ],
)
def test_malformed_references_are_refused(change: Any, words: str) -> None:
    raw = reference().to_dict()
    change(raw)
    with pytest.raises(ReferenceError, match=words):
        reference_from_metrics({"reference": raw})


@pytest.fixture
def with_reference(tmp_path: Path) -> Path:
    torch.manual_seed(7)
    path = tmp_path / "m.pt"
    figures = {"roc_auc": 0.8, "brier": 0.1, "ece": 0.02, "log_loss": 0.3}
    metrics = {"reference": reference().to_dict(), "test": dict.fromkeys(HEADS, figures)}
    save_model(PropensityNet(tiny()), tiny(), path, metrics=metrics)
    return path


def test_artifact_with_a_reference_loads_it(with_reference: Path) -> None:
    meta = load_model(with_reference).meta
    assert reference_from_metrics(meta.metrics) == reference()
    assert set(reference().event_mix) == set(EVENT_TYPES)


def test_artifact_with_a_malformed_reference_is_refused(
    with_reference: Path, tmp_path: Path
) -> None:
    def spoil(meta: dict[str, Any]) -> None:
        meta["metrics"]["reference"]["scores"]["purchase"]["shares"][0] = -1.0

    message = refusal(with_meta(with_reference, tmp_path / "spoilt.pt", spoil))
    assert "malformed meta.json" in message and "shares" in message


def test_artifact_with_malformed_test_figures_is_refused(
    with_reference: Path, tmp_path: Path
) -> None:
    def spoil(meta: dict[str, Any]) -> None:
        meta["metrics"]["test"]["purchase"]["roc_auc"] = "high"

    assert "test.purchase" in refusal(with_meta(with_reference, tmp_path / "spoilt.pt", spoil))
