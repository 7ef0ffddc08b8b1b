"""Tiny synthetic shop logs with a learnable signal, for training and evaluation tests."""

import json
import random
from pathlib import Path

from model.training.fitting import TrainConfig
from schemas.events import ShopEvent

MIN = 60_000
START = 1_700_000_000_000
HORIZON_MS = 30 * MIN  # the prediction horizon the training tests use
QUICK_TRAINING = TrainConfig(seed=3, threads=1).quick()


def shop_events(
    n_users: int = 240, seed: int = 0, span_hours: float = 12.0
) -> list[tuple[ShopEvent, float]]:
    """(event, oracle P(purchase within 30 min)) pairs; buyers cart an item, then buy it soon."""
    rng = random.Random(seed)
    out: list[tuple[ShopEvent, float]] = []
    for u in range(n_users):
        user = f"user{u}"
        t = START + int(rng.random() * span_hours * 60 * MIN)
        buyer = rng.random() < 0.35
        session = f"{user}-s"
        for k in range(rng.randint(2, 6)):
            item = f"item{rng.randint(0, 40)}"
            out.append(
                (
                    ShopEvent("view", user, item, t, session_id=session, price=10.0 + k),
                    0.3 if buyer else 0.05,
                )
            )
            t += rng.randint(10, 120) * 1000
        if buyer:
            item = f"item{rng.randint(0, 40)}"
            out.append(
                (ShopEvent("add_to_cart", user, item, t, session_id=session, price=25.0), 0.9)
            )
            t += rng.randint(1, 10) * MIN
            out.append((ShopEvent("purchase", user, item, t, session_id=session, price=25.0), 0.05))
    out.sort(key=lambda pair: pair[0].ts)
    return out


def write_jsonl(path: Path, pairs: list[tuple[ShopEvent, float]], *, oracle: bool) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for event, p in pairs:
            obj = event.to_json()
            if oracle:
                obj["oracle_purchase"] = p
            handle.write(json.dumps(obj) + "\n")
    return path
