"""Time-based splits: windows follow event time, never a shuffle."""

import numpy as np
import pytest

from model.training.data import DatasetError, build_dataset, choose_split, window_masks
from model.training.splits import TEST, TRAIN, VALIDATION, TimeSplit, split_by_fractions
from schemas.events import ShopEvent

MIN = 60_000


def test_window_of_uses_half_open_intervals() -> None:
    split = TimeSplit(val_start_ms=100, test_start_ms=200)
    assert split.window_of(np.array([0, 99, 100, 199, 200, 999])).tolist() == [0, 0, 1, 1, 2, 2]


def test_fractions_cut_at_time_quantiles() -> None:
    ts = np.arange(100)[::-1] * 10  # order of input must not matter
    split = split_by_fractions(ts, 0.2, 0.1)
    windows = split.window_of(ts)
    assert (windows == TRAIN).sum() == 70
    assert (windows == VALIDATION).sum() == 20
    assert (windows == TEST).sum() == 10
    # every train time precedes every validation time, which precedes every test time
    assert ts[windows == TRAIN].max() < ts[windows == VALIDATION].min()
    assert ts[windows == VALIDATION].max() < ts[windows == TEST].min()


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.2), (0.5, 0.5), (0.2, 1.0)])
def test_bad_fractions_are_rejected(val: float, test: float) -> None:
    with pytest.raises(ValueError):
        split_by_fractions(np.arange(10), val, test)


def test_a_users_history_spans_windows_but_each_event_is_in_its_own() -> None:
    events = [ShopEvent("view", "u", f"i{t}", t * MIN, session_id="s") for t in range(0, 100, 10)]
    events.append(ShopEvent("view", "v", "x", 500 * MIN))  # stretches the data end
    data = build_dataset(events, horizon_ms=30 * MIN)
    split = TimeSplit(val_start_ms=40 * MIN, test_start_ms=70 * MIN)
    purchase_train, _ = window_masks(data, split, TRAIN)
    purchase_val, _ = window_masks(data, split, VALIDATION)
    purchase_test, _ = window_masks(data, split, TEST)
    ts = data.flat("ts")
    # Purged: 20 and 30 are in the train window, but their 30-minute horizons reach into
    # validation; likewise 50 and 60 reach into test.
    assert sorted(ts[purchase_train] // MIN) == [0, 10]
    assert sorted(ts[purchase_val] // MIN) == [40]
    assert sorted(ts[purchase_test] // MIN) == [70, 80, 90]  # 500 is past data_end - H


def test_split_round_trips_through_a_dict() -> None:
    split = TimeSplit(1, 2, "x")
    assert TimeSplit.from_dict(split.to_dict()) == split


def test_horizon_longer_than_the_data_is_a_clear_error() -> None:
    events = [ShopEvent("view", "u", "i", t * MIN) for t in range(10)]
    data = build_dataset(events, horizon_ms=24 * 60 * MIN)
    with pytest.raises(DatasetError, match="horizon"):
        choose_split(data)
