"""Padded mini-batches of whole user sequences, and mapping batch outputs back to events."""

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from model.training.data import Dataset

MAX_BATCH_EVENTS = 32_768  # padded (B x T) cells per batch: bounds memory on long users


@dataclass(frozen=True)
class Batch:
    """Right-padded sequences; the network is causal, so padding never reaches real events."""

    x: Tensor  # (B, T, F) float32
    y: Tensor  # (B, T, heads) float32
    mask: Tensor  # (B, T, heads) bool: labelled events that count for the loss
    users: tuple[int, ...]  # index into Dataset.users of each row
    lengths: tuple[int, ...]


def _group(order: list[int], lengths: np.ndarray, batch_size: int) -> list[list[int]]:
    """Consecutive groups (users sorted by length) within batch_size and the cell budget."""
    groups: list[list[int]] = []
    current: list[int] = []
    for u in order:
        cells = lengths[u] * (len(current) + 1)  # u is the longest so far: order is sorted
        if current and (len(current) >= batch_size or cells > MAX_BATCH_EVENTS):
            groups.append(current)
            current = []
        current.append(u)
    if current:
        groups.append(current)
    return groups


def make_batches(
    dataset: Dataset, mask: np.ndarray, *, batch_size: int, truncate: bool = True
) -> list[Batch]:
    """Batches of the users that have at least one event in the flattened ``mask`` (N, heads).

    With ``truncate`` each sequence stops at its last masked event: later events cannot
    change earlier outputs of a causal network, so they would only cost time.
    """
    offsets = np.concatenate([[0], np.cumsum([len(u.ts) for u in dataset.users])])
    lengths = np.zeros(len(dataset.users), dtype=np.int64)
    for u, user in enumerate(dataset.users):
        hits = np.flatnonzero(mask[offsets[u] : offsets[u + 1]].any(axis=1))
        if len(hits):
            lengths[u] = hits[-1] + 1 if truncate else len(user.ts)
    order = sorted(np.flatnonzero(lengths).tolist(), key=lambda u: (lengths[u], u))
    labels = np.stack(
        [dataset.flat_labels("purchase_within_horizon"), dataset.flat_labels("cart_abandon")], 1
    )
    batches = []
    for group in _group(order, lengths, batch_size):
        t_max = int(lengths[group[-1]])
        n_features = dataset.users[group[0]].features.shape[1]
        x = np.zeros((len(group), t_max, n_features), np.float32)
        y = np.zeros((len(group), t_max, 2), np.float32)
        m = np.zeros((len(group), t_max, 2), bool)
        for row, u in enumerate(group):
            n, start = int(lengths[u]), int(offsets[u])
            x[row, :n] = dataset.users[u].features[:n]
            y[row, :n] = labels[start : start + n]
            m[row, :n] = mask[start : start + n]
        batches.append(
            Batch(
                torch.from_numpy(x),
                torch.from_numpy(y),
                torch.from_numpy(m),
                tuple(group),
                tuple(int(lengths[u]) for u in group),
            )
        )
    return batches


def scatter_outputs(dataset: Dataset, batches: list[Batch], outputs: list[Tensor]) -> np.ndarray:
    """Per-event outputs (N, heads) from per-batch (B, T, heads); NaN where not computed."""
    offsets = np.concatenate([[0], np.cumsum([len(u.ts) for u in dataset.users])])
    flat = np.full((int(offsets[-1]), 2), np.nan, dtype=np.float32)
    for batch, out in zip(batches, outputs, strict=True):
        values = out.detach().numpy()
        for row, (u, n) in enumerate(zip(batch.users, batch.lengths, strict=True)):
            flat[offsets[u] : offsets[u] + n] = values[row, :n]
    return flat
