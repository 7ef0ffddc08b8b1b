"""What a shopper's visible actions look like: which items, quantities, carts and visits.

Every choice here depends only on the hidden chain (intent, and the current need, a
category) and on what the shopper has visibly done (items recently viewed, the cart). That
keeps the exact Bayes filter of ``model.simulate.ceiling`` possible: it can compute the
probability of each visible item under every hidden state. ``item_likelihoods`` below is
that computation, kept beside the sampling code it mirrors.
"""

import random
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from model.simulate.catalogue import Catalogue, Item

# Chance that a view goes back to an item viewed recently, by intent; views that raise
# intent always do, once there is one. This is what makes intent visible.
REPEAT_VIEW: Final = (0.0, 0.2, 0.6, 0.85)
# Chance that a fresh view stays in the category of the current need, by intent.
IN_NEED_VIEW: Final = (0.05, 0.7, 0.9, 0.95)
MAX_RECENT: Final = 6  # distinct items remembered as "recently viewed"
QUANTITY_CUMULATIVE: Final = (0.85, 0.95, 0.98, 1.0)  # 1, 2, 3 or 4 of an item


@dataclass
class Basket:
    """The shopper's current need (hidden), recently viewed items and cart (both visible)."""

    catalogue: Catalogue
    need: int = 0
    recent: list[Item] = field(default_factory=list)  # oldest first, distinct
    cart: dict[str, tuple[Item, int]] = field(default_factory=dict)

    def new_need(self, rng: random.Random) -> None:
        self.need = self.catalogue.pick_category(rng)

    def view(self, rng: random.Random, intent: int, interest: bool) -> Item:
        """A recent item again (always when ``interest``), else a fresh one of the need or,
        for the less keen, of any category; the item joins the recently viewed."""
        if self.recent and (interest or rng.random() < REPEAT_VIEW[intent]):
            item = rng.choice(self.recent)
        elif interest or rng.random() < IN_NEED_VIEW[intent]:
            item = self.catalogue.pick_item(rng, self.need)
        else:
            item = self.catalogue.pick_item(rng, self.catalogue.pick_category(rng))
        remember(self.recent, item)
        return item

    def wish(self, rng: random.Random) -> Item:
        return self.recent[-1] if self.recent else self.catalogue.pick_item(rng, self.need)

    def unheld(self, rng: random.Random) -> Item:
        """The newest recent item not in the cart, else a fresh item of the need not in it."""
        item = newest_unheld(self.recent, self.cart)
        while item is None or item.item_id in self.cart:
            item = self.catalogue.pick_item(rng, self.need)
        return item

    def add(self, rng: random.Random) -> tuple[Item, int]:
        item = self.unheld(rng)
        u = rng.random()
        quantity = 1 + sum(u > q for q in QUANTITY_CUMULATIVE[:-1])
        self.cart[item.item_id] = (item, quantity)
        return item, quantity

    def remove(self, rng: random.Random) -> tuple[Item, int]:
        return self.cart.pop(rng.choice(list(self.cart)))

    def checkout(self) -> list[tuple[Item, int]]:
        bought = list(self.cart.values())
        self.cart.clear()
        return bought


def newest_unheld(recent: list[Item], cart: dict[str, tuple[Item, int]]) -> Item | None:
    return next((i for i in reversed(recent) if i.item_id not in cart), None)


def remember(recent: list[Item], item: Item) -> None:
    if item not in recent:
        recent.append(item)
        del recent[:-MAX_RECENT]


@dataclass(frozen=True)
class ItemLikelihoods:
    """P(the visible item | hidden need, intent) of each kind of choice, for one event.

    Each array is indexed [need category] or [need category, intent]; the filter multiplies
    them into the jump rates of the matching chain transitions.
    """

    view: np.ndarray  # (categories, intents): an ordinary view at that intent
    interest_view: np.ndarray  # (categories,): a view that raises intent
    unheld: np.ndarray  # (categories,): an add to cart or a buy-now
    wish: np.ndarray  # (categories,)


def item_likelihoods(
    catalogue: Catalogue, item: Item, recent: list[Item], cart: dict[str, tuple[Item, int]]
) -> ItemLikelihoods:
    """Exact probabilities of ``item`` under each choice above, given the visible history."""
    n_categories = len(catalogue.items_by_category)
    category = catalogue.category_index(item)
    p_item = catalogue.item_probability(item)  # within its own category
    in_need = np.zeros(n_categories)
    in_need[category] = p_item  # P(item | fresh pick of the need), per need category
    any_category = catalogue.category_share(category) * p_item
    repeat = (1.0 / len(recent)) if item in recent else 0.0
    intents = len(REPEAT_VIEW)
    view = np.empty((n_categories, intents))
    for k in range(intents):
        fresh = IN_NEED_VIEW[k] * in_need + (1 - IN_NEED_VIEW[k]) * any_category
        view[:, k] = REPEAT_VIEW[k] * repeat + (1 - REPEAT_VIEW[k]) * fresh if recent else fresh
    interest_view = np.full(n_categories, repeat) if recent else in_need
    unheld_recent = newest_unheld(recent, cart)
    if unheld_recent is not None:
        unheld = np.full(n_categories, 1.0 if unheld_recent == item else 0.0)
    else:
        held = sum(
            catalogue.item_probability(i) for i, _ in cart.values() if i.category == item.category
        )
        unheld = in_need / (1.0 - held) if item.item_id not in cart else np.zeros(n_categories)
    wish = np.full(n_categories, 1.0 if recent[-1] == item else 0.0) if recent else in_need
    return ItemLikelihoods(view, interest_view, unheld, wish)
