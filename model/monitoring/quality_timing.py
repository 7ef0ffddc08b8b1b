"""Timing of live quality at a given window size: what ``propensity bench --quality`` prints.

Synthetic outcomes (calibrated random scores, 40 % with a cart) fill one model version's
windows; then ``windows()`` (the copy taken on the event loop) and ``figures_of`` (the
computation a thread runs) are timed, and the memory the structure holds is traced.
"""

import time
import tracemalloc
from typing import Any

import numpy as np
import orjson

from model.monitoring.outcomes import Outcome
from model.monitoring.quality import HOUR_MS, LiveQuality, QualityLimits, figures_of

_T0 = 1_733_300_000_000


def synthetic_outcomes(n: int, seed: int = 0) -> list[Outcome]:
    """``n`` outcomes a second of event time apart, labels drawn from their scores."""
    rng = np.random.default_rng(seed)
    p, cart = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    y, cart_y = rng.uniform(0, 1, n) < p, rng.uniform(0, 1, n) < cart
    has_cart = rng.uniform(0, 1, n) < 0.4
    return [
        Outcome(
            f"bench-{i}",
            "bench",
            _T0 + i * 1000,
            float(p[i]),
            int(y[i]),
            float(cart[i]) if has_cart[i] else None,
            int(cart_y[i]) if has_cart[i] else None,
        )
        for i in range(n)
    ]


def time_quality(outcomes: int, repeats: int = 3) -> dict[str, Any]:
    """Fill both windows with ``outcomes`` outcomes (count window and event-time window the
    same size) and time the pieces; figures in seconds and bytes."""
    limits = QualityLimits(
        window_outcomes=outcomes, window_ms=outcomes * 1000 + HOUR_MS, time_window_cap=outcomes
    )
    records = synthetic_outcomes(outcomes)
    held_bytes = _held_bytes(limits, records)
    quality = LiveQuality(limits)
    started = time.perf_counter()
    for outcome in records:
        quality.add(outcome)
    add_seconds = time.perf_counter() - started
    copy, compute = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        contents = quality.windows()
        t1 = time.perf_counter()
        figures_of(contents)
        compute.append(time.perf_counter() - t1)
        copy.append(t1 - t0)
    values = [orjson.dumps(_as_record(o)) for o in records[: min(outcomes, 100_000)]]
    decoder = LiveQuality(limits)
    t0 = time.perf_counter()
    for value in values:
        decoder.add_value(value)
    decode_seconds = time.perf_counter() - t0
    return {
        "outcomes": outcomes,
        "windows": 4,  # 2 heads x (count, event time)
        "add_per_outcome_seconds": add_seconds / outcomes,
        "decode_and_add_per_record_seconds": decode_seconds / len(values),
        "windows_copy_seconds": min(copy),
        "figures_seconds": min(compute),
        "held_bytes": held_bytes,
        "held_bytes_per_outcome": held_bytes / outcomes,
    }


def _held_bytes(limits: QualityLimits, records: list[Outcome]) -> int:
    """Bytes a LiveQuality holding ``records`` allocated (traced: a separate, slower fill)."""
    tracemalloc.start()
    try:
        quality = LiveQuality(limits)
        for outcome in records:
            quality.add(outcome)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del quality
    return held


def _as_record(o: Outcome) -> dict[str, Any]:
    return {
        "event_id": o.event_id,
        "user_id": "u",
        "model_version": o.model_version,
        "event_type": "view",
        "event_ts": o.event_ts,
        "horizon_ms": HOUR_MS,
        "scores": {"purchase": o.purchase_score, "cart_abandon": o.cart_abandon_score},
        "labels": {"purchase": o.purchase_label, "cart_abandon": o.cart_abandon_label},
        "resolved_by": "horizon",
        "resolved_at": o.event_ts + HOUR_MS,
    }
