"""Shoppers that answer back: a caller nudges a shopper (a treatment action reached them) and
the shopper may react, so a policy's true effect is known and its measured uplift can be
checked against it.

The true effect (``Reaction.effect``): a nudged shopper with a non-empty cart comes back and
checks out within ``within_ms`` with that probability, unless the shopper purchases or
empties the cart first. A shopper who would have bought within the horizon anyway still
converts (only sooner), so the uplift per nudged shopper is about effect x P(no purchase
within the horizon). A shopper who does not react, or whose response is cancelled, keeps
exactly the plain chain's random draws, so nudges change a stream only after the nudge and
only for shoppers who react. The truth is measured by running the same seed twice with
different nudges (streams.harness.uplift_loop): users are independent, each shopper's
stream depends only on the nudges it received.

Without nudges a ReactiveSimulation yields exactly ``simulate``'s events, in the same order.
"""

import heapq
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from model.simulate.config import SimulatedEvent, SimulationConfig
from model.simulate.drift import Drift
from model.simulate.run import Shopper, World, build_world
from model.simulate.shopper import Kind
from schemas.units import HOUR_MS


@dataclass(frozen=True)
class Reaction:
    """How a nudged shopper reacts: with probability ``effect`` (a non-empty cart needed) a
    checkout uniformly within ``within_ms`` after the nudge, unless a purchase comes first."""

    effect: float
    within_ms: int = HOUR_MS

    def __post_init__(self) -> None:
        if not 0.0 <= self.effect <= 1.0:
            raise ValueError(f"effect must be in [0, 1], got {self.effect}")
        if self.within_ms < 1:
            raise ValueError("within_ms must be at least 1")


class ReactiveSimulation:
    """The simulator's merged stream with a ``nudge`` for the caller between events.

    Iterate it like ``simulate``; while holding an event at time t, ``nudge(user_id, t)``
    affects that shopper's events after t only (a later nudge, after more events were
    handed out, takes effect from the last of them). The heap holds every shopper's next jump,
    silent ones included, so a response can come before the shopper's next visible event.
    """

    def __init__(
        self, config: SimulationConfig, reaction: Reaction, drift: Drift | None = None
    ) -> None:
        if config.with_oracle:
            raise ValueError("the oracle solves the chain without nudges: simulate without it")
        self.reaction = reaction
        self.world: World = build_world(config, drift)
        newcomers = 0 if drift is None else drift.newcomers(config.n_users)
        self.shoppers = [
            Shopper(self.world, index, newcomer=index >= config.n_users)
            for index in range(config.n_users + newcomers)
        ]
        self._by_user = {shopper.user_id: shopper for shopper in self.shoppers}
        self._queues: list[deque[SimulatedEvent]] = [deque() for _ in self.shoppers]
        self._versions = [0] * len(self.shoppers)  # a re-keyed shopper's older entries are stale
        self._heap: list[tuple[float, int, int]] = []  # (time key, shopper index, version)
        self._nudge_rngs: dict[int, random.Random] = {}
        self.nudges = self.responses_scheduled = 0
        self._now = 0  # the last event handed out: a response cannot come before it

    def __iter__(self) -> Iterator[SimulatedEvent]:
        for shopper in self.shoppers:
            self._schedule(shopper.index)
        while self._heap:
            _, index, version = heapq.heappop(self._heap)
            if version != self._versions[index]:
                continue
            queue = self._queues[index]
            if not queue:
                queue.extend(self.shoppers[index].fire())
            if queue:
                item = queue.popleft()
                self._now = item.event.ts
                yield item  # the caller may nudge here
            self._schedule(index)

    def _schedule(self, index: int) -> None:
        """Push the shopper's next queued event, else its next jump (keyed like simulate's
        heap: a visible event by its whole millisecond, then by shopper index)."""
        queue = self._queues[index]
        shopper = self.shoppers[index]
        if queue:
            key: float = queue[0].event.ts
        else:
            if shopper.ended or shopper.sample() is None:
                return
            assert shopper.pending is not None
            t, kind, _ = shopper.pending
            key = t if kind is not None and kind >= Kind.NEED else int(t)
        heapq.heappush(self._heap, (key, index, self._versions[index]))

    def nudge(self, user_id: str, at_ms: int) -> bool:
        """A treatment action reached ``user_id`` at ``at_ms``; True when the shopper will
        react (a response is scheduled; a purchase before it cancels it)."""
        shopper = self._by_user.get(user_id)
        if shopper is None:
            raise KeyError(f"no simulated shopper {user_id!r}")
        self.nudges += 1
        rng = self._nudge_rngs.setdefault(
            shopper.index, random.Random(f"{self.world.config.seed}/{shopper.index}/nudges")
        )
        reacts, delay = rng.random() < self.reaction.effect, rng.random() * self.reaction.within_ms
        if not reacts or not shopper.basket.cart:
            return False
        # A caller that decides on a slice of events nudges after the slice: the response
        # starts from the stream's present, never before an event already handed out.
        respond_at = max(float(at_ms), shopper.t, float(self._now)) + delay
        if shopper.respond_at is not None and shopper.respond_at <= respond_at:
            return True
        shopper.respond_at = respond_at
        self.responses_scheduled += 1
        pending = shopper.pending
        if pending is not None and pending[0] >= respond_at and not self._queues[shopper.index]:
            shopper.pending = (respond_at, None, shopper.state)  # the response comes first
            self._versions[shopper.index] += 1
            key = int(respond_at)
            heapq.heappush(self._heap, (key, shopper.index, self._versions[shopper.index]))
        return True
