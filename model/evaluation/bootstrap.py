"""Bootstrap confidence intervals resampled by user (events of one user move together)."""

from collections.abc import Callable

import numpy as np

MetricFn = Callable[[np.ndarray | None], dict[str, float]]


def user_replicates(users: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """``n`` per-event weight vectors: each draws as many users as there are, with replacement."""
    rng = np.random.default_rng(seed)
    unique, inverse = np.unique(users, return_inverse=True)
    replicates = []
    for _ in range(n):
        counts = np.bincount(rng.integers(0, len(unique), len(unique)), minlength=len(unique))
        replicates.append(counts[inverse].astype(np.float64))
    return replicates


def replicate_values(metric: MetricFn, replicates: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Each metric's value under every replicate (NaN where undefined, e.g. one class drawn)."""
    rows = [metric(w) for w in replicates]
    names = rows[0].keys() if rows else []
    return {name: np.array([row[name] for row in rows], dtype=np.float64) for name in names}


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite replicate values (NaN, NaN when there are none)."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)
