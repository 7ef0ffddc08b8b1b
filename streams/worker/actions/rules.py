"""The parsed policy: frozen dataclasses, one per ``[actions.NAME]`` table and one for the file."""

from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from streams.worker.actions.local_time import QuietHours

Trigger = Literal["event", "inactivity"]
Head = Literal["purchase", "cart_abandon"]
CartCondition = Literal["any", "non_empty", "empty"]
QuietHoursMode = Literal["hold", "drop"]


@dataclass(frozen=True)
class ActionRule:
    """One ``[actions.NAME]`` table. Times are in ms; ``max_score`` None = no upper bound
    (1.0 included); ``event_types`` None = every event type."""

    name: str
    priority: int
    trigger: Trigger
    head: Head
    min_score: float = 0.0
    max_score: float | None = None
    inactive_ms: int | None = None
    event_types: frozenset[str] | None = None
    cart: CartCondition = "any"
    min_cart_value: float | None = None
    max_cart_value: float | None = None
    cooldown_ms: int = 0
    quiet_hours: QuietHours | None = None
    quiet_hours_mode: QuietHoursMode = "hold"
    holdout_share: float = 0.0


@dataclass(frozen=True)
class Policy:
    """The whole file; ``actions`` sorted by priority (highest first), then by name."""

    salt: str
    control_share: float
    timezone: ZoneInfo
    daily_cap: int  # actions per user per local day, all actions together; 0 = no cap
    uplift_horizon_ms: int
    actions: tuple[ActionRule, ...]
    policy_hash: str

    def rule(self, name: str) -> ActionRule | None:
        """The rule called ``name``, if the policy has one."""
        return next((r for r in self.actions if r.name == name), None)

    @property
    def inactivity_rules(self) -> tuple[ActionRule, ...]:
        """The inactivity-triggered rules, in priority order."""
        return tuple(r for r in self.actions if r.trigger == "inactivity")
