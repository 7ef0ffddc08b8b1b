"""The best purchase probability any model can give from a shopper's visible events.

The oracle (``model.simulate.oracle``) knows the hidden state: segment, intent, whether the
visit is still on, the current need. A model sees only events. This module is the exact
Bayes filter of the hidden chain given everything an event shows (type, time, session,
item, cart) and returns P(purchase within H | the visible history) after each event: the
ceiling for a model of the events. Ranking by the posterior maximises the expected ROC
curve at every threshold (Neyman-Pearson), so no model of the same events can beat its AUC
except by sampling luck.

Hidden state per shopper: segment s, need category n, and (in a visit or not, intent) j;
the cart size is visible, so it is tracked, not filtered. Between events the chain moves by
silent jumps and emits nothing, so the filter propagates with the silent generator minus
the rate of every jump (the chance that nothing visible happened). A silent jump from intent
0 to 1 draws a new need from the category shares, independent of everything else, so the
(need, j) mass splits into paths without such a jump (propagated per need) and the rest
(its need distributed as the shares): two small matrix exponentials, not one over every
need. At an event the filter multiplies in the rate of each chain jump that could have made
it and the probability of its item (``model.simulate.behaviour.item_likelihoods``).

Exact up to floating point, except that event times are whole milliseconds: the filter uses
the jump density at the floored time, which is off by under 1e-4 relative per event.
tests/unit/test_ceiling.py checks it against the oracle and the simulated outcomes.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import scipy.linalg

from model.simulate.behaviour import ItemLikelihoods, item_likelihoods, remember
from model.simulate.catalogue import Catalogue, Item
from model.simulate.config import CHECKOUT_STEP_MS
from model.simulate.oracle import PurchaseOracle
from model.simulate.shopper import (
    INITIAL_INTENT,
    N_CART,
    N_INTENT,
    SEGMENTS,
    Kind,
    Segment,
    state_index,
    transitions,
)
from schemas.events import ShopEvent
from schemas.units import HOUR_MS

N_MODES: Final = 2 * N_INTENT  # j = active * N_INTENT + intent
_INTENT_OF: Final = np.array([j % N_INTENT for j in range(N_MODES)])
_SILENT: Final = frozenset((Kind.NEED, Kind.FADE, Kind.LEAVE))
_MAX_EIGEN_ERROR: Final = 1e-10


def _mode(state: int) -> int:
    return state // N_CART


def _is_reset(kind: Kind, target: int) -> bool:
    """A silent jump that draws a new need (intent 0 -> 1 while away)."""
    return kind == Kind.NEED and _INTENT_OF[_mode(target)] == 1


class _Propagator:
    """exp(G t) of one batch of generators (segments x modes x modes), rows propagated."""

    def __init__(self, generators: np.ndarray) -> None:
        self.generators = generators
        self.values, self.vectors = np.linalg.eig(generators)
        self.inverse = np.linalg.inv(self.vectors)
        self.hour = np.stack([scipy.linalg.expm(g) for g in generators])
        if np.abs(self.over(1.0) - self.hour).max() > _MAX_EIGEN_ERROR:
            self.values = np.array([])  # ill-conditioned: fall back to expm every time

    def over(self, hours: float) -> np.ndarray:
        if not len(self.values):
            return np.stack([scipy.linalg.expm(g * hours) for g in self.generators])
        scaled = self.vectors * np.exp(self.values * hours)[:, None, :]
        return np.asarray((scaled @ self.inverse).real)


@dataclass(frozen=True)
class _Hour:
    """For one cart size and UTC hour: the silent propagators and each visible jump's rates."""

    keep: _Propagator  # silent moves except need resets; every jump's rate leaves
    full: _Propagator  # every silent move
    rates: dict[Kind, np.ndarray]  # (segments, modes, modes)


def _hour(segments: Sequence[Segment], cart: int, hour: int) -> _Hour:
    shape = (len(segments), N_MODES, N_MODES)
    keep, full = np.zeros(shape), np.zeros(shape)
    rates: dict[Kind, np.ndarray] = {}
    for s, segment in enumerate(segments):
        for j in range(N_MODES):
            state = state_index(0, 0, cart) + j * N_CART
            for kind, rate, target in transitions(segment, state, hour):
                keep[s, j, j] -= rate
                full[s, j, j] -= rate
                if kind in _SILENT:
                    full[s, j, _mode(target)] += rate
                    if not _is_reset(kind, target):
                        keep[s, j, _mode(target)] += rate
                else:
                    rates.setdefault(kind, np.zeros(shape))[s, j, _mode(target)] += rate
    return _Hour(_Propagator(keep), _Propagator(full), rates)


class CeilingModel:
    """Everything the filter of any shopper shares: propagators, rates, the oracle."""

    def __init__(
        self,
        catalogue: Catalogue,
        horizon_ms: int,
        oracle: PurchaseOracle | None = None,
        segments: Sequence[Segment] = SEGMENTS,
    ) -> None:
        self.catalogue = catalogue
        self.horizon_ms = horizon_ms
        self.oracle = oracle or PurchaseOracle(segments)
        self.hours = [[_hour(segments, c, h) for h in range(24)] for c in range(N_CART)]
        n_categories = len(catalogue.items_by_category)
        self.need_shares = np.array([catalogue.category_share(c) for c in range(n_categories)])
        shares = np.array([s.share for s in segments]) / sum(s.share for s in segments)
        intent = np.asarray(INITIAL_INTENT) / sum(INITIAL_INTENT)
        self.prior = np.zeros((len(segments), N_MODES))
        self.prior[:, :N_INTENT] = shares[:, None] * intent[None, :]  # idle, empty cart

    def purchase_probability(self, modes: np.ndarray, cart: int, ts: int) -> float:
        """P(purchase within the horizon) of a normalised (segments, modes) posterior."""
        total = 0.0
        for s in range(modes.shape[0]):
            v = self.oracle.probabilities(s, ts, ts + self.horizon_ms)
            total += float(modes[s] @ v[[j * N_CART + cart for j in range(N_MODES)]])
        return min(1.0, max(0.0, total))


class ShopperPosterior:
    """The filter for one shopper: feed it their events in order, read the ceiling back."""

    def __init__(self, model: CeilingModel, start_ms: int) -> None:
        self.model = model
        self.t = start_ms
        # (segments, needs, modes): mass of paths with no need reset since the last event;
        # (segments, modes): all mass. Their difference has its need distributed as shares.
        self.kept: np.ndarray = model.prior[:, None, :] * model.need_shares[None, :, None]
        self.total: np.ndarray = model.prior.copy()
        self.recent: list[Item] = []
        self.cart: dict[str, tuple[Item, int]] = {}
        self.session: str | None = None
        self.checkout_left = 0

    def observe(self, event: ShopEvent) -> float:
        """Condition on ``event`` and return P(purchase within H | everything seen so far)."""
        item = Item(event.item_id, event.category or "", event.price or 0.0)
        if self.checkout_left:  # the rest of a checkout: no jump of the chain
            self.checkout_left -= 1
            return 1.0 if self.checkout_left else self._predict(event.ts)
        self._advance(event.ts)
        cart = len(self.cart)
        hour = self.model.hours[cart][(event.ts // HOUR_MS) % 24]
        likes = item_likelihoods(self.model.catalogue, item, self.recent, self.cart)
        joint = self._joint()
        moved = self._jump(event, item, hour, likes, joint)
        total_mass = moved.sum()
        if not total_mass > 0:
            raise ValueError(f"event {event.event_id} is impossible under the simulated shopper")
        self.kept = moved / total_mass
        self.total = self.kept.sum(axis=1)
        if event.event_type == "purchase" and self.checkout_left:
            return 1.0
        return self._predict(event.ts)

    def _predict(self, ts: int) -> float:
        return self.model.purchase_probability(self.total, len(self.cart), ts)

    def _joint(self) -> np.ndarray:
        """(segments, needs, modes) posterior: kept paths plus reset paths at the shares."""
        reset = self.total - self.kept.sum(axis=1)
        return np.asarray(self.kept + reset[:, None, :] * self.model.need_shares[None, :, None])

    def _jump(
        self, event: ShopEvent, item: Item, hour: _Hour, likes: ItemLikelihoods, joint: np.ndarray
    ) -> np.ndarray:
        """Mass after the event: each possible jump's rate times its item's probability."""

        def through(kind: Kind, like: np.ndarray) -> np.ndarray:
            moved = joint @ hour.rates[kind] if kind in hour.rates else 0 * joint
            # like: (needs,) or (needs, intents) read at each target mode's intent
            weight = like[:, None] if like.ndim == 1 else like[:, _INTENT_OF]
            return np.asarray(moved * weight[None, :, :])

        kind = event.event_type
        if kind == "view":
            if event.session_id != self.session:
                self.session = event.session_id
                out = through(Kind.START, likes.view)
            else:
                out = through(Kind.VIEW, likes.view)
                out = out + through(Kind.VIEW_INTEREST, likes.interest_view)
            remember(self.recent, item)
            return out
        if kind == "wishlist":
            return through(Kind.WISHLIST, likes.wish)
        if kind == "add_to_cart":
            self.cart[item.item_id] = (item, event.quantity or 1)
            return through(Kind.ADD, likes.unheld)
        if kind == "remove_from_cart":
            self.cart.pop(item.item_id, None)
            flat = np.ones(likes.wish.shape)
            return np.asarray(through(Kind.REMOVE, flat) + through(Kind.REMOVE_COOL, flat))
        if kind == "purchase" and item.item_id in self.cart:
            self.checkout_left = len(self.cart) - 1
            self.t = event.ts + self.checkout_left * CHECKOUT_STEP_MS
            self.cart.clear()
            return through(Kind.CHECKOUT, np.ones(likes.wish.shape))
        if kind == "purchase":
            return through(Kind.BUY_NOW, likes.unheld)
        raise ValueError(f"the simulator emits no {kind!r} events")

    def _advance(self, ts: int) -> None:
        """Propagate from the last restart to ``ts`` with nothing visible happening."""
        cart = len(self.cart)
        hours = self.model.hours[cart]
        t = self.t
        while t < ts:
            hour_start = (t // HOUR_MS) * HOUR_MS
            step_end = min(hour_start + HOUR_MS, ts)
            hour = hours[(t // HOUR_MS) % 24]
            if step_end - t == HOUR_MS:
                keep, full = hour.keep.hour, hour.full.hour
            else:
                fraction = (step_end - t) / HOUR_MS
                keep, full = hour.keep.over(fraction), hour.full.over(fraction)
            self.kept = self.kept @ keep
            self.total = (self.total[:, None, :] @ full)[:, 0, :]
            scale = self.total.sum()
            self.kept /= scale
            self.total /= scale
            t = step_end
        self.t = max(self.t, ts)
