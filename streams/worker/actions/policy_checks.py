"""Validation of a parsed policy document into a ``Policy``: every wrong value becomes one
located problem, and all problems are raised together in one PolicyError."""

import re
from typing import Any, Final, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.events import EVENT_TYPES
from schemas.units import HOUR_MS, MINUTE_MS
from streams.worker.actions.exceptions import PolicyError
from streams.worker.actions.local_time import QuietHours, parse_quiet_hours
from streams.worker.actions.policy_lines import KeyLines
from streams.worker.actions.policy_table import ProblemList, TableReader
from streams.worker.actions.rules import (
    ActionRule,
    CartCondition,
    Head,
    Policy,
    QuietHoursMode,
    Trigger,
)

POLICY_KEYS: Final = ("salt", "control_share", "timezone", "daily_cap", "uplift_horizon_hours")
ACTION_KEYS: Final = (
    *("priority", "trigger", "head", "min_score", "max_score", "inactive_minutes"),
    *("event_types", "cart", "min_cart_value", "max_cart_value", "cooldown_hours"),
    *("quiet_hours", "quiet_hours_mode", "holdout_share"),
)
# Action names are metric labels and go into action ids and the state's bytes: keep them plain.
ACTION_NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_DAILY_CAP: Final = 1000  # the state stores the day's count in 16 bits
DEFAULT_UPLIFT_HORIZON_HOURS: Final = 24.0


def check_policy(document: dict[str, Any], lines: KeyLines, name: str, digest: str) -> Policy:
    """The Policy in a parsed TOML ``document``; PolicyError listing every problem."""
    problems = ProblemList(name, lines)
    for key in document:
        if key not in {"policy", "actions"}:
            problems.add((key,), key, f"unknown top-level key or table {key!r}")
    settings = _table(document, "policy", problems)
    actions = _table(document, "actions", problems)
    salt = settings.text("salt", required=True)
    control_share = settings.number("control_share", low=0, high=1, high_open=True)
    zone = _zone(settings)
    daily_cap = settings.number("daily_cap", low=0, high=MAX_DAILY_CAP, integer=True)
    horizon_hours = settings.number("uplift_horizon_hours", low=0, low_open=True)
    settings.refuse_unknown(POLICY_KEYS)
    if not actions.values:
        problems.add(("actions",), None, "no actions: add at least one [actions.NAME] table")
    rules = [_rule(rule_name, actions, problems) for rule_name in actions.values]
    if problems.items:
        raise PolicyError(problems.text())
    return Policy(
        salt=cast(str, salt),
        control_share=control_share or 0.0,
        timezone=cast(ZoneInfo, zone),
        daily_cap=int(daily_cap or 0),
        uplift_horizon_ms=round((horizon_hours or DEFAULT_UPLIFT_HORIZON_HOURS) * HOUR_MS),
        actions=tuple(sorted(cast(list[ActionRule], rules), key=lambda r: (-r.priority, r.name))),
        policy_hash=digest,
    )


def _table(document: dict[str, Any], key: str, problems: ProblemList) -> TableReader:
    value = document.get(key, {})
    if not isinstance(value, dict):
        problems.add((key,), key, f"{key} must be a table ([{key}]), not {value!r}")
        value = {}
    elif key not in document and key == "policy":
        problems.add((key,), None, "missing the [policy] table")
    return TableReader(value, (key,), problems)


def _zone(settings: TableReader) -> ZoneInfo | None:
    zone_name = settings.text("timezone") if settings.present("timezone") else "UTC"
    if zone_name is None:
        return None
    try:
        return ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        settings.problem("timezone", f"timezone {zone_name!r} is not a known IANA time zone")
        return None


def _rule(name: str, actions: TableReader, problems: ProblemList) -> ActionRule | None:
    """One ``[actions.NAME]`` table; None when it has problems (they are recorded)."""
    value = actions.values[name]
    if not isinstance(value, dict):
        actions.problem(name, f"actions.{name} must be a table ([actions.{name}])")
        return None
    table = TableReader(value, ("actions", name), problems)
    count = len(problems.items)
    if not ACTION_NAME.match(name):
        table.problem(None, f"action name {name!r} must be 1-64 letters, digits, '_' or '-'")
    table.refuse_unknown(ACTION_KEYS)
    priority = table.number("priority", low=-1e9, high=1e9, integer=True, required=True)
    trigger = table.choice("trigger", ("event", "inactivity"), required=True)
    head = table.choice("head", ("purchase", "cart_abandon"), required=True)
    min_score, max_score = _score_bounds(table)
    inactive_ms = _inactivity(table, trigger)
    event_types = table.members("event_types", EVENT_TYPES)
    if event_types is not None and trigger == "inactivity":
        table.problem("event_types", "event_types applies to event triggers only")
    cart = table.choice("cart", ("any", "non_empty", "empty")) or "any"
    if head == "cart_abandon" and cart == "empty":
        table.problem("cart", "head 'cart_abandon' has no score when the cart is empty")
    min_cart, max_cart = _cart_bounds(table)
    cooldown_hours = table.number("cooldown_hours", low=0)
    quiet_hours, quiet_mode = _quiet_hours(table)
    holdout = table.number("holdout_share", low=0, high=1, high_open=True)
    if len(problems.items) > count:
        return None
    return ActionRule(
        name=name,
        priority=int(cast(float, priority)),
        trigger=cast(Trigger, trigger),
        head=cast(Head, head),
        min_score=min_score or 0.0,
        max_score=max_score,
        inactive_ms=inactive_ms,
        event_types=event_types,
        cart=cast(CartCondition, cart),
        min_cart_value=min_cart,
        max_cart_value=max_cart,
        cooldown_ms=round((cooldown_hours or 0.0) * HOUR_MS),
        quiet_hours=quiet_hours,
        quiet_hours_mode=quiet_mode,
        holdout_share=holdout or 0.0,
    )


def _score_bounds(table: TableReader) -> tuple[float | None, float | None]:
    low = table.number("min_score", low=0, high=1)
    high = table.number("max_score", low=0, high=1, low_open=True)
    if low is not None and high is not None and high <= low:
        table.problem("max_score", f"max_score {high:g} must be above min_score {low:g}")
    # Scores are at most 1: an upper bound of 1.0 is no bound, and 1.0 itself matches.
    return low, None if high == 1.0 else high


def _inactivity(table: TableReader, trigger: str | None) -> int | None:
    minutes = table.number("inactive_minutes", low=0, low_open=True)
    if trigger == "inactivity" and not table.present("inactive_minutes"):
        table.problem("trigger", "an inactivity trigger needs inactive_minutes")
    if trigger == "event" and table.present("inactive_minutes"):
        table.problem("inactive_minutes", "inactive_minutes applies to inactivity triggers only")
    return None if minutes is None else round(minutes * MINUTE_MS)


def _cart_bounds(table: TableReader) -> tuple[float | None, float | None]:
    low = table.number("min_cart_value", low=0)
    high = table.number("max_cart_value", low=0)
    if low is not None and high is not None and high < low:
        table.problem("max_cart_value", f"max_cart_value {high:g} is below min_cart_value {low:g}")
    return low, high


def _quiet_hours(table: TableReader) -> tuple[QuietHours | None, QuietHoursMode]:
    text = table.text("quiet_hours")
    window = None
    if text is not None:
        try:
            window = parse_quiet_hours(text)
        except ValueError as exc:
            table.problem("quiet_hours", str(exc))
    mode = table.choice("quiet_hours_mode", ("hold", "drop")) or "hold"
    if table.present("quiet_hours_mode") and not table.present("quiet_hours"):
        table.problem("quiet_hours_mode", "quiet_hours_mode without quiet_hours")
    return window, cast(QuietHoursMode, mode)
