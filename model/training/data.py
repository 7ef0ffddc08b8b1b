"""Per-user labelled sequences for training and evaluation, built with the shared encoder."""

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.importers.jsonl import CEILING_KEY, ORACLE_KEY, read_jsonl_with_extras
from model.serving.labels import UserLabels, label_user
from model.serving.user_state import EncoderState, EventRecord, encode_step, record_from_event
from model.training.splits import TEST, TRAIN, TimeSplit, split_by_fractions
from schemas.events import ShopEvent
from schemas.exceptions import PropensityError

HEAD_PURCHASE, HEAD_CART_ABANDON = 0, 1
# Reference probabilities of purchase within H that simulated data carries: name -> JSONL key.
ORACLE, CEILING = "oracle", "ceiling"
REFERENCE_KEYS = {ORACLE: ORACLE_KEY, CEILING: CEILING_KEY}
References = Mapping[str, Sequence[float | None]]


class DatasetError(PropensityError):
    """Data that cannot be labelled or split as asked (too short, no purchases, ...)."""


@dataclass
class UserSequence:
    """One user's events in time order with features, encoder read-outs and labels."""

    user_id: str
    records: list[EventRecord]
    features: np.ndarray  # (T, F) float32, from model.serving.user_state.encode_step
    ts: np.ndarray  # (T,) int64 epoch ms
    event_types: np.ndarray  # (T,) int8, index into EVENT_TYPES
    cart_items: np.ndarray  # (T,) int32, encoder cart size after the event
    cart_value: np.ndarray  # (T,) float32, encoder cart value after the event
    session_position: np.ndarray  # (T,) int32, 1 = first event of its session
    labels: UserLabels
    # name -> (T,) float32 reference P(purchase within H), NaN where unknown (see REFERENCE_KEYS)
    references: dict[str, np.ndarray]


@dataclass
class Dataset:
    """All users' labelled sequences plus what is needed to split and describe them."""

    users: list[UserSequence]
    horizon_ms: int
    data_end_ms: int
    reference_names: tuple[str, ...]  # the references that some event carries

    def flat_reference(self, name: str) -> np.ndarray:
        return np.concatenate([u.references[name] for u in self.users])

    @property
    def n_events(self) -> int:
        return sum(len(u.ts) for u in self.users)

    def flat(self, name: str) -> np.ndarray:
        """One per-event array (an attribute of UserSequence) concatenated over users."""
        return np.concatenate([getattr(u, name) for u in self.users])

    def flat_labels(self, name: str) -> np.ndarray:
        return np.concatenate([getattr(u.labels, name) for u in self.users])

    def user_index(self) -> np.ndarray:
        """For each flattened event, the position of its user in ``users``."""
        return np.repeat(np.arange(len(self.users)), [len(u.ts) for u in self.users])


def _fold(records: list[EventRecord]) -> tuple[np.ndarray, list[int], list[float], list[int]]:
    """Run the shared encoder over one user's records, reading its state after each step."""
    state = EncoderState()
    rows, carts, values, positions = [], [], [], []
    for record in records:
        rows.append(encode_step(state, record))
        carts.append(state.cart_items)
        values.append(state.cart_value)
        positions.append(state.session_events)
    return np.asarray(rows, dtype=np.float32), carts, values, positions


def _user_sequence(
    user_id: str,
    items: list[tuple[ShopEvent, dict[str, float | None]]],
    horizon_ms: int,
    data_end_ms: int,
    reference_names: tuple[str, ...],
) -> UserSequence:
    items.sort(key=lambda pair: pair[0].ts)  # stable: ties keep arrival order
    records = [record_from_event(event) for event, _ in items]
    features, carts, values, positions = _fold(records)
    ts = np.array([r.ts for r in records], dtype=np.int64)
    types = np.array([r.event_type for r in records], dtype=np.int8)
    cart_items = np.array(carts, dtype=np.int32)
    labels = label_user(ts, types, cart_items, horizon_ms=horizon_ms, data_end_ms=data_end_ms)
    references = {
        name: np.array(
            [np.nan if (v := refs.get(name)) is None else v for _, refs in items], dtype=np.float32
        )
        for name in reference_names
    }
    return UserSequence(
        user_id=user_id,
        records=records,
        features=features,
        ts=ts,
        event_types=types,
        cart_items=cart_items,
        cart_value=np.array(values, dtype=np.float32),
        session_position=np.array(positions, dtype=np.int32),
        labels=labels,
        references=references,
    )


def build_dataset(
    events: Iterable[ShopEvent],
    *,
    horizon_ms: int,
    references: References | None = None,
) -> Dataset:
    """Group events by user, order each user's by event time, encode and label them;
    ``references`` (name -> one value per event) ride along, e.g. the simulator's oracle."""
    references = references or {}
    names = tuple(name for name, values in references.items() if any(v is not None for v in values))
    columns = [(name, references[name]) for name in names]
    by_user: dict[str, list[tuple[ShopEvent, dict[str, float | None]]]] = defaultdict(list)
    data_end = -1
    for i, event in enumerate(events):
        by_user[event.user_id].append((event, {name: values[i] for name, values in columns}))
        data_end = max(data_end, event.ts)
    if not by_user:
        raise DatasetError("no events to build a dataset from")
    users = [
        _user_sequence(uid, items, horizon_ms, data_end, names) for uid, items in by_user.items()
    ]
    return Dataset(users=users, horizon_ms=horizon_ms, data_end_ms=data_end, reference_names=names)


def labelled_times(dataset: Dataset) -> np.ndarray:
    """Event times of every event whose purchase label is observable."""
    times: np.ndarray = dataset.flat("ts")[dataset.flat_labels("purchase_mask")]
    return times


def choose_split(
    dataset: Dataset,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    val_start_ms: int | None = None,
    test_start_ms: int | None = None,
) -> TimeSplit:
    """Explicit cut points when both are given, else time quantiles of labelled events."""
    if val_start_ms is not None and test_start_ms is not None:
        return TimeSplit(val_start_ms, test_start_ms)
    if val_start_ms is not None or test_start_ms is not None:
        raise DatasetError("give both --val-start and --test-start, or neither")
    ts = labelled_times(dataset)
    if len(ts) < 3:
        raise DatasetError(
            f"only {len(ts)} events have a fully observed {dataset.horizon_ms / 60_000:g}-minute "
            "horizon: the data is shorter than the horizon (try a smaller --horizon-minutes)"
        )
    return split_by_fractions(ts, val_fraction, test_fraction)


def window_masks(dataset: Dataset, split: TimeSplit, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Flattened masks (purchase, cart_abandon) of the labelled events inside ``window``.

    Purged: a train or validation event counts only when its horizon ends before the next
    window starts, so no label of one window is decided by what happens in the next.
    """
    ts = dataset.flat("ts")
    inside = split.window_of(ts) == window
    if window != TEST:
        next_start = split.val_start_ms if window == TRAIN else split.test_start_ms
        inside &= ts + dataset.horizon_ms <= next_start
    return (
        inside & dataset.flat_labels("purchase_mask"),
        inside & dataset.flat_labels("cart_abandon_mask"),
    )


def file_fingerprint(path: Path) -> str:
    """sha256 of a data file's bytes (streamed)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def load_events(path: Path) -> tuple[list[ShopEvent], dict[str, list[float | None]]]:
    """Contract events of a JSONL file (bad lines skipped and logged) and the reference
    probabilities their lines carry (``oracle_purchase``, ``ceiling_purchase``), by name."""
    events: list[ShopEvent] = []
    references: dict[str, list[float | None]] = {name: [] for name in REFERENCE_KEYS}
    for event, extras in read_jsonl_with_extras(path, tuple(REFERENCE_KEYS.values())):
        events.append(event)
        for name, key in REFERENCE_KEYS.items():
            value = extras.get(key)
            references[name].append(None if value is None else float(value))
    return events, references
