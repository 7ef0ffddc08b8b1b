"""The drifting simulator: nothing changes before the drift or without one; after it, the
world changes as its kind says; the same seed gives the same events."""

import pytest

from model.simulate import SimulationConfig, simulate
from model.simulate.drift import NEW_SEGMENT_SHARE, PRICE_FACTOR, Drift
from schemas.units import DAY_MS

CONFIG = SimulationConfig(n_users=400, days=4, seed=3, with_oracle=False)
AT = CONFIG.start_ms + 2 * DAY_MS


def events(drift: Drift | None) -> list:
    return [item.event for item in simulate(CONFIG, drift)]


@pytest.fixture(scope="module")
def plain() -> list:
    return events(None)


@pytest.mark.parametrize("kind", ["conversion", "segment", "prices"])
def test_before_the_drift_nothing_changes_and_the_seed_repeats(kind: str, plain: list) -> None:
    drifted = events(Drift(kind, AT))
    assert [e for e in drifted if e.ts < AT] == [e for e in plain if e.ts < AT]
    assert drifted == events(Drift(kind, AT))
    assert [e for e in drifted if e.ts >= AT] != [e for e in plain if e.ts >= AT]


def test_prices_shift_after_the_drift(plain: list) -> None:
    drifted = events(Drift("prices", AT))
    assert len(drifted) == len(plain)
    for before, after in zip(plain, drifted, strict=True):
        factor = PRICE_FACTOR if before.ts >= AT else 1.0
        assert after.price == pytest.approx(round(before.price * factor, 2))


def test_a_new_segment_arrives_at_the_drift(plain: list) -> None:
    drifted = events(Drift("segment", AT))
    newcomers = {f"u{i:06d}" for i in range(400, 400 + round(NEW_SEGMENT_SHARE * 400))}
    theirs = [e for e in drifted if e.user_id in newcomers]
    assert theirs and min(e.ts for e in theirs) >= AT
    assert [e for e in drifted if e.user_id not in newcomers] == plain


def test_conversion_drift_lowers_the_purchase_rate() -> None:
    config = SimulationConfig(n_users=1500, days=4, seed=4, with_oracle=False)
    at = config.start_ms + DAY_MS

    def purchases_per_visit(drift: Drift | None) -> float:
        after = [item.event for item in simulate(config, drift) if item.event.ts >= at]
        buys = sum(e.event_type == "purchase" for e in after)
        return buys / len({e.session_id for e in after})

    assert purchases_per_visit(Drift("conversion", at)) < 0.85 * purchases_per_visit(None)


def test_drift_refuses_the_oracle_and_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="undrifted"):
        next(simulate(SimulationConfig(n_users=5, days=1), Drift("prices", AT)))
    with pytest.raises(ValueError, match="not one of"):
        Drift("weather", AT)
