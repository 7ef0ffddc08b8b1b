"""The hidden shopper: a continuous-time Markov chain whose jumps are the shop events.

State = (in a visit or idle, intent 0..3, items in cart 0..MAX_CART) for a shopper of one
segment. Rates are per hour; only the idle shopper's visit rate depends on the (UTC) hour
of day. The simulator samples this chain exactly and ``model.simulate.oracle`` solves the
same chain, so both read their rates from ``transitions`` below and nowhere else.
"""

import bisect
import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, NamedTuple

from schemas.units import DAY_MS, HOUR_MS

N_INTENT: Final = 4  # 0 not shopping, 1 browsing, 2 comparing, 3 ready to buy
MAX_CART: Final = 4
N_CART: Final = MAX_CART + 1
N_STATES: Final = 2 * N_INTENT * N_CART


class Kind(IntEnum):
    """What a jump of the chain is: START to BUY_NOW emit events, the last three are silent."""

    START = 0  # idle -> visit; emits the visit's landing view
    VIEW = 1
    VIEW_INTEREST = 2  # a view that raises intent (a repeat view of a candidate item)
    WISHLIST = 3
    ADD = 4
    REMOVE = 5
    REMOVE_COOL = 6  # a removal that also lowers intent
    CHECKOUT = 7  # buys the whole cart: one purchase event per item, one second apart
    BUY_NOW = 8  # a single purchase without the cart
    NEED = 9  # silent: a new need appears or grows while idle (intent + 1)
    FADE = 10  # silent: interest fades (intent - 1)
    LEAVE = 11  # silent: the visit ends; the cart stays


PURCHASE_KINDS: Final = frozenset((Kind.CHECKOUT, Kind.BUY_NOW))


@dataclass(frozen=True)
class Segment:
    """A kind of shopper: how common it is and how often it visits at intent 1."""

    name: str
    share: float
    visits_per_day: float


SEGMENTS: Final = (
    Segment("occasional", 0.55, 0.35),
    Segment("regular", 0.35, 1.0),
    Segment("frequent", 0.10, 3.0),
)
INITIAL_INTENT: Final = (0.55, 0.25, 0.13, 0.07)  # a new shopper starts away, cart empty

# Visit-rate multiplier by UTC hour: quiet nights, a lunch bump, an evening peak (mean 1).
_RAW_RHYTHM: Final = (
    0.45, 0.25, 0.15, 0.1, 0.1, 0.15, 0.3, 0.55, 0.8, 0.95, 1.0, 1.05,
    1.2, 1.1, 1.0, 1.0, 1.05, 1.2, 1.5, 1.85, 2.0, 1.85, 1.4, 0.85,
)  # fmt: skip
RHYTHM: Final = tuple(r * 24 / sum(_RAW_RHYTHM) for r in _RAW_RHYTHM)

# Per-hour rates, indexed by intent 0..3. A visit has about one event a minute.
VISIT_INTENT_FACTOR: Final = (0.6, 1.0, 2.2, 4.0)
SAVED_CART_FACTOR: Final = 1.5  # a cart left behind brings the shopper back sooner
NEED_RATE: Final = (1 / 240, 1 / 150, 1 / 100, 0.0)
IDLE_FADE_RATE: Final = (0.0, 1 / 48, 1 / 40, 1 / 30)
VIEW_RATE: Final = (80.0, 45.0, 30.0, 22.0)  # keen shoppers read product pages longer
INTEREST_RATE: Final = (4.0, 3.0, 2.5, 0.0)
WISHLIST_RATE: Final = (0.5, 1.5, 3.0, 2.0)
ADD_RATE: Final = (0.2, 1.5, 5.0, 10.0)
REMOVE_RATE: Final = (2.0, 1.5, 1.0, 0.6)
REMOVE_COOL_RATE: Final = (0.0, 1.5, 1.0, 0.5)
CHECKOUT_RATE: Final = (0.02, 0.2, 1.5, 8.0)
BUY_NOW_RATE: Final = (0.0, 0.0, 0.15, 1.0)
ACTIVE_FADE_RATE: Final = (0.0, 0.5, 0.5, 0.5)  # slow: in a visit, interest mostly cools visibly
LEAVE_RATE: Final = (24.0, 12.0, 8.0, 6.0)


def state_index(active: int, intent: int, cart: int) -> int:
    """The index of (in a visit or not, intent, items in cart)."""
    return (active * N_INTENT + intent) * N_CART + cart


def unpack(state: int) -> tuple[int, int, int]:
    """(active, intent, cart) of a state index."""
    rest, cart = divmod(state, N_CART)
    active, intent = divmod(rest, N_INTENT)
    return active, intent, cart


def transitions(segment: Segment, state: int, hour: int) -> list[tuple[Kind, float, int]]:
    """Every jump out of ``state`` at this UTC hour: (kind, rate per hour, next state)."""
    active, k, c = unpack(state)
    if not active:
        visit = segment.visits_per_day / 24 * VISIT_INTENT_FACTOR[k] * RHYTHM[hour]
        moves = [(Kind.START, visit * (SAVED_CART_FACTOR if c else 1.0), state_index(1, k, c))]
        if k < N_INTENT - 1:
            moves.append((Kind.NEED, NEED_RATE[k], state_index(0, k + 1, c)))
        if k > 0:
            moves.append((Kind.FADE, IDLE_FADE_RATE[k], state_index(0, k - 1, c)))
        return moves
    moves = [(Kind.VIEW, VIEW_RATE[k], state), (Kind.WISHLIST, WISHLIST_RATE[k], state)]
    moves.append((Kind.LEAVE, LEAVE_RATE[k], state_index(0, k, c)))
    if k < N_INTENT - 1:
        moves.append((Kind.VIEW_INTEREST, INTEREST_RATE[k], state_index(1, k + 1, c)))
    if k > 0:
        moves.append((Kind.FADE, ACTIVE_FADE_RATE[k], state_index(1, k - 1, c)))
    if c < MAX_CART:
        moves.append((Kind.ADD, ADD_RATE[k], state_index(1, k, c + 1)))
    if c > 0:
        moves.append((Kind.REMOVE, REMOVE_RATE[k], state_index(1, k, c - 1)))
        moves.append((Kind.CHECKOUT, CHECKOUT_RATE[k], state_index(1, 0, 0)))
        if k > 0:
            moves.append((Kind.REMOVE_COOL, REMOVE_COOL_RATE[k], state_index(1, k - 1, c - 1)))
    if BUY_NOW_RATE[k] > 0:
        moves.append((Kind.BUY_NOW, BUY_NOW_RATE[k], state_index(1, 0, c)))
    return [move for move in moves if move[1] > 0]


class Choice(NamedTuple):
    """The jumps out of one state in one hour, laid out for sampling."""

    total_per_ms: float
    cumulative: tuple[float, ...]
    kinds: tuple[Kind, ...]
    targets: tuple[int, ...]


class StateJumps(NamedTuple):
    """The jumps out of one state in each UTC hour, and its integrated rate over a day."""

    hours: tuple[Choice, ...]
    per_day: float  # integral of the total rate over any 24 h window (the rates repeat daily)


JumpTable = Sequence[StateJumps]  # indexed by state


def jump_table(segment: Segment, factors: Mapping[Kind, float] | None = None) -> list[StateJumps]:
    """Sampling tables for every state and hour of one segment; ``factors`` multiply the
    rates of some kinds of jump (a drifted world)."""
    table = []
    for state in range(N_STATES):
        hours = []
        for hour in range(24):
            moves = transitions(segment, state, hour)
            if factors:
                moves = [(kind, rate * factors.get(kind, 1.0), to) for kind, rate, to in moves]
            cumulative = tuple(itertools.accumulate(rate / HOUR_MS for _, rate, _ in moves))
            kinds = tuple(kind for kind, _, _ in moves)
            targets = tuple(target for _, _, target in moves)
            hours.append(Choice(cumulative[-1], cumulative, kinds, targets))
        table.append(StateJumps(tuple(hours), sum(c.total_per_ms for c in hours) * HOUR_MS))
    return table


def next_jump(rng: random.Random, jumps: StateJumps, t: float) -> tuple[float, Kind, int]:
    """Time, kind and target of the next jump from time ``t`` (ms), sampled exactly.

    The total rate is constant within each UTC hour and repeats daily, so one
    unit-exponential draw is spent by whole days, then hour by hour (inversion of the
    integrated rate).
    """
    budget = -math.log(1.0 - rng.random())
    if budget > jumps.per_day:
        days = budget // jumps.per_day
        budget -= days * jumps.per_day
        t += days * DAY_MS
    while True:
        hour_index = int(t // HOUR_MS)
        choice = jumps.hours[hour_index % 24]
        room = (hour_index + 1) * HOUR_MS - t
        if choice.total_per_ms * room >= budget:
            t += budget / choice.total_per_ms
            break
        budget -= choice.total_per_ms * room
        t = float((hour_index + 1) * HOUR_MS)
    pick = bisect.bisect_right(choice.cumulative, rng.random() * choice.total_per_ms)
    pick = min(pick, len(choice.kinds) - 1)
    return t, choice.kinds[pick], choice.targets[pick]


def purchases_within(
    rng: random.Random, table: JumpTable, state: int, start_ms: int, end_ms: int
) -> bool:
    """Run the hidden chain alone from (state, start) and say whether it purchases by end.

    The brute-force counterpart of the oracle, used to check it by Monte Carlo.
    """
    t = float(start_ms)
    end = end_ms
    while True:
        t, kind, state = next_jump(rng, table[state], t)
        if t > end:
            return False
        if kind in PURCHASE_KINDS:
            return True
        t = float(int(t))
