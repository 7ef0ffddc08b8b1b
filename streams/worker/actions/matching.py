"""Whether an action rule's conditions hold on a scored event, and the reason text."""

from schemas.units import MINUTE_MS
from streams.worker.actions.rules import ActionRule
from streams.worker.actions.state import ScoredEvent


def cart_is_empty(event: ScoredEvent) -> bool:
    """The cart after the event is empty: by its item count when the propensity event has one,
    else by the missing cart-abandonment score (null exactly when the cart is empty)."""
    if event.cart_items is not None:
        return event.cart_items == 0
    return event.cart_abandon is None


def _cart_holds(rule: ActionRule, event: ScoredEvent) -> bool:
    if rule.cart != "any" and cart_is_empty(event) != (rule.cart == "empty"):
        return False
    if rule.min_cart_value is None and rule.max_cart_value is None:
        return True
    # A bound on the cart value cannot hold when the propensity event does not carry it.
    value = event.cart_value
    if value is None:
        return False
    low = rule.min_cart_value if rule.min_cart_value is not None else 0.0
    high = rule.max_cart_value if rule.max_cart_value is not None else float("inf")
    return low <= value <= high


def conditions_hold(rule: ActionRule, event: ScoredEvent) -> bool:
    """The rule's score and cart conditions on ``event`` (not its trigger, not suppressions):
    ``min_score <= score < max_score`` (no upper bound when max_score is None)."""
    score = event.score(rule.head)
    if score is None or score < rule.min_score:
        return False
    if rule.max_score is not None and score >= rule.max_score:
        return False
    return _cart_holds(rule, event)


def event_trigger_matches(rule: ActionRule, event: ScoredEvent) -> bool:
    """An event-triggered rule fires on this event."""
    if rule.trigger != "event":
        return False
    if rule.event_types is not None and event.event_type not in rule.event_types:
        return False
    return conditions_hold(rule, event)


def reason_text(rule: ActionRule, event: ScoredEvent) -> str:
    """Why the rule fired, e.g. "cart_abandon 0.82 >= 0.7 on add_to_cart"."""
    score = event.score(rule.head) or 0.0
    text = f"{rule.head} {score:.2f} >= {rule.min_score:g}"
    if rule.max_score is not None:
        text += f" < {rule.max_score:g}"
    if rule.trigger == "inactivity" and rule.inactive_ms is not None:
        minutes = rule.inactive_ms / MINUTE_MS
        return f"{text}, {minutes:g} min inactive after {event.event_type}"
    return f"{text} on {event.event_type}"
