"""The simulated shop's items: categories with log-normal prices and skewed popularity."""

import bisect
import itertools
import math
import random
from dataclasses import dataclass
from typing import Final, NamedTuple


class CategorySpec(NamedTuple):
    """A category: its code, median price, log-price spread and share of shopper needs."""

    code: str
    median_price: float
    log_sigma: float
    popularity: float


CATEGORIES: Final = (
    CategorySpec("electronics.smartphone", 280.0, 0.55, 10.0),
    CategorySpec("electronics.audio.headphone", 60.0, 0.70, 6.0),
    CategorySpec("electronics.video.tv", 450.0, 0.50, 3.0),
    CategorySpec("computers.notebook", 650.0, 0.40, 4.0),
    CategorySpec("appliances.kitchen.kettle", 35.0, 0.35, 4.0),
    CategorySpec("appliances.environment.vacuum", 150.0, 0.50, 3.0),
    CategorySpec("apparel.shoes", 70.0, 0.45, 8.0),
    CategorySpec("apparel.jacket", 90.0, 0.50, 5.0),
    CategorySpec("furniture.living_room.sofa", 500.0, 0.50, 2.0),
    CategorySpec("kids.toys", 25.0, 0.60, 5.0),
    CategorySpec("sport.bicycle", 400.0, 0.50, 2.0),
    CategorySpec("beauty.fragrance", 45.0, 0.50, 5.0),
    CategorySpec("books.fiction", 15.0, 0.30, 4.0),
    CategorySpec("home.bedding", 40.0, 0.45, 3.0),
    CategorySpec("auto.accessories.tyres", 80.0, 0.40, 2.0),
    CategorySpec("garden.tools", 30.0, 0.55, 2.0),
)
ITEM_ID_BASE: Final = 1_000_000
ZIPF_EXPONENT: Final = 1.1  # a few best-sellers per category, a long tail
MIN_ITEMS_PER_CATEGORY: Final = 8  # more than a cart holds, so a fresh pick always exists


class Item(NamedTuple):
    item_id: str
    category: str
    price: float


@dataclass(frozen=True)
class Catalogue:
    """Items grouped by category, with cumulative weights for fast popularity sampling."""

    items_by_category: tuple[tuple[Item, ...], ...]
    item_weights: tuple[tuple[float, ...], ...]  # cumulative, per category
    category_weights: tuple[float, ...]  # cumulative
    # item id -> (category index, P(item | a pick in its category))
    lookup: dict[str, tuple[int, float]]

    def pick_category(self, rng: random.Random) -> int:
        return bisect.bisect_right(self.category_weights, rng.random() * self.category_weights[-1])

    def pick_item(self, rng: random.Random, category: int) -> Item:
        weights = self.item_weights[category]
        index = bisect.bisect_right(weights, rng.random() * weights[-1])
        return self.items_by_category[category][min(index, len(weights) - 1)]

    def category_index(self, item: Item) -> int:
        return self.lookup[item.item_id][0]

    def item_probability(self, item: Item) -> float:
        """P(``item`` | a popularity-weighted pick within its own category)."""
        return self.lookup[item.item_id][1]

    def category_share(self, category: int) -> float:
        """P(``category`` | a popularity-weighted pick of a category)."""
        return share(self.category_weights, category)


def share(cumulative: tuple[float, ...], index: int) -> float:
    """The probability of ``index`` under a popularity draw from cumulative weights."""
    return (cumulative[index] - (cumulative[index - 1] if index else 0.0)) / cumulative[-1]


def build_catalogue(n_items: int, seed: int) -> Catalogue:
    """``n_items`` items spread over the categories by popularity; prices are log-normal."""
    rng = random.Random(f"catalogue-{seed}")
    total = sum(spec.popularity for spec in CATEGORIES)
    groups = []
    next_id = ITEM_ID_BASE
    for spec in CATEGORIES:
        count = max(MIN_ITEMS_PER_CATEGORY, round(n_items * spec.popularity / total))
        log_median = math.log(spec.median_price)
        items = []
        for _ in range(count):
            price = round(math.exp(rng.gauss(log_median, spec.log_sigma)), 2)
            items.append(Item(str(next_id), spec.code, max(price, 0.01)))
            next_id += 1
        groups.append(tuple(items))
    item_weights = tuple(
        tuple(itertools.accumulate(1.0 / (rank + 1) ** ZIPF_EXPONENT for rank in range(len(g))))
        for g in groups
    )
    category_weights = tuple(itertools.accumulate(spec.popularity for spec in CATEGORIES))
    lookup = {
        item.item_id: (c, share(weights, r))
        for c, (group, weights) in enumerate(zip(groups, item_weights, strict=True))
        for r, item in enumerate(group)
    }
    return Catalogue(tuple(groups), item_weights, category_weights, lookup)
