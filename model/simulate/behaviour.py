"""What a shopper's visible actions look like: which items, quantities, carts and visits."""

import random
from dataclasses import dataclass, field
from typing import Final

from model.simulate.catalogue import Catalogue, Item

# Chance that a view goes back to an item already considered, by intent; views that
# raise intent always are, once there is a candidate. This is what makes intent visible.
REPEAT_VIEW: Final = (0.0, 0.2, 0.6, 0.85)
INTEREST_REPEAT_VIEW: Final = 1.0
# Chance that a fresh view stays in the category of the current need, by intent.
IN_NEED_VIEW: Final = (0.05, 0.7, 0.9, 0.95)
MAX_CONSIDERED: Final = 6
QUANTITY_CUMULATIVE: Final = (0.85, 0.95, 0.98, 1.0)  # 1, 2, 3 or 4 of an item


@dataclass
class Basket:
    """The visible side of one shopper: the current need, items considered, cart contents."""

    catalogue: Catalogue
    need: int = 0
    considered: list[Item] = field(default_factory=list)
    cart: dict[str, tuple[Item, int]] = field(default_factory=dict)

    def new_need(self, rng: random.Random) -> None:
        self.need = self.catalogue.pick_category(rng)
        self.considered = []

    def view(self, rng: random.Random, intent: int, interest: bool) -> Item:
        repeat = INTEREST_REPEAT_VIEW if interest else REPEAT_VIEW[intent]
        if self.considered and rng.random() < repeat:
            return rng.choice(self.considered)
        if interest or rng.random() < IN_NEED_VIEW[intent]:
            item = self.catalogue.pick_item(rng, self.need)
            if item not in self.considered:
                self.considered.append(item)
                del self.considered[:-MAX_CONSIDERED]
            return item
        return self.catalogue.pick_item(rng, self.catalogue.pick_category(rng))

    def wish(self, rng: random.Random, intent: int) -> Item:
        return self.considered[-1] if self.considered else self.view(rng, intent, False)

    def add(self, rng: random.Random) -> tuple[Item, int]:
        """Put a considered item (newest first) or a new one of the need into the cart."""
        item = next((i for i in reversed(self.considered) if i.item_id not in self.cart), None)
        category = self.need
        while item is None or item.item_id in self.cart:
            item = self.catalogue.pick_item(rng, category)
            category = self.catalogue.pick_category(rng)
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

    def buy_now(self, rng: random.Random) -> Item:
        return self.considered[-1] if self.considered else self.catalogue.pick_item(rng, self.need)
