"""A rule's score, cart and event-type conditions on one scored event."""

from streams.worker.actions.matching import conditions_hold, event_trigger_matches
from streams.worker.actions.policy import parse_policy
from streams.worker.actions.rules import ActionRule
from streams.worker.actions.state import ScoredEvent


def rule(*lines: str) -> ActionRule:
    text = '[policy]\nsalt = "s"\n[actions.a]\npriority = 1\ntrigger = "event"\n'
    return parse_policy((text + "\n".join(lines) + "\n").encode()).actions[0]


def event(
    purchase: float = 0.5,
    cart_abandon: float | None = 0.5,
    cart_items: int | None = 2,
    cart_value: float | None = 50.0,
    event_type: str = "view",
) -> ScoredEvent:
    return ScoredEvent("e", event_type, 0, "m", purchase, cart_abandon, cart_items, cart_value)


def test_score_bounds_are_min_inclusive_max_exclusive_and_1_0_means_none() -> None:
    bounded = rule('head = "purchase"', "min_score = 0.2", "max_score = 0.6")
    assert [conditions_hold(bounded, event(purchase=s)) for s in (0.19, 0.2, 0.59, 0.6)] == [
        False,
        True,
        True,
        False,
    ]
    top = rule('head = "purchase"', "min_score = 0.9", "max_score = 1.0")
    assert top.max_score is None and conditions_hold(top, event(purchase=1.0))


def test_cart_abandon_needs_a_cart() -> None:
    r = rule('head = "cart_abandon"')
    assert conditions_hold(r, event())
    assert not conditions_hold(r, event(cart_abandon=None, cart_items=0))


def test_cart_conditions_and_value_bounds() -> None:
    empty = rule('head = "purchase"', 'cart = "empty"')
    assert conditions_hold(empty, event(cart_abandon=None, cart_items=0))
    assert not conditions_hold(empty, event())
    # Without cart_items the missing cart-abandonment score says the cart is empty.
    assert conditions_hold(empty, event(cart_abandon=None, cart_items=None))
    valued = rule('head = "purchase"', "min_cart_value = 20", "max_cart_value = 100")
    assert [conditions_hold(valued, event(cart_value=v)) for v in (19.99, 20, 100, 100.5)] == [
        False,
        True,
        True,
        False,
    ]
    assert not conditions_hold(valued, event(cart_value=None))  # a bound needs the value


def test_event_types_filter_event_triggers() -> None:
    r = rule('head = "purchase"', 'event_types = ["add_to_cart", "wishlist"]')
    assert event_trigger_matches(r, event(event_type="wishlist"))
    assert not event_trigger_matches(r, event(event_type="view"))
