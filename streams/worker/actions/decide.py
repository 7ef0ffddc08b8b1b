"""The decision step, pure: a propensity or the event-time watermark in, decisions out.

``on_propensity`` applies the event-triggered rules to one propensity event and makes it the
user's pending inactivity trigger (a new event cancels the earlier one: an inactivity action
fires X minutes after the user's LAST event, never when the shopper comes back).
``on_time`` is called with the watermark: it fires due inactivity rules, releases decisions
held by quiet hours and drops expired state. ``next_due_ms`` says when on_time next has work,
so the agent can index users by it. Decisions of both assignments count for cooldowns and the
daily cap and obey quiet hours, so the control group stays comparable with the treatment.

Within one decision the candidates are tried by priority: a candidate suppressed by its
cooldown, the daily cap or dropping quiet hours passes the turn to the next one; the first
that is not suppressed wins and the rest are suppressed as ``lower_priority``.
"""

from dataclasses import dataclass, replace

from streams.worker.actions.assignment import action_id, assignment
from streams.worker.actions.local_time import local_day, next_day_start_ms
from streams.worker.actions.matching import conditions_hold, event_trigger_matches, reason_text
from streams.worker.actions.propensity_input import MalformedPropensity, read_propensity
from streams.worker.actions.rules import ActionRule, Policy
from streams.worker.actions.state import (
    ActionState,
    Decision,
    PendingTrigger,
    ScoredEvent,
    Suppression,
    SuppressionReason,
)

__all__ = ["Step", "action_id", "assignment", "next_due_ms", "on_propensity", "on_time"]


@dataclass(frozen=True)
class Step:
    """What one call did. ``decisions``: to publish now (treatment and control alike),
    including held decisions released by this call; ``held``: decided now but held back by
    quiet hours (published when a later call releases them); ``skipped``: why a propensity
    event was not used (one line), None when it was."""

    state: ActionState
    decisions: tuple[Decision, ...] = ()
    held: tuple[Decision, ...] = ()
    suppressions: tuple[Suppression, ...] = ()
    skipped: str | None = None

    def then(self, later: "Step") -> "Step":
        """This step followed by ``later`` (which started from this step's state)."""
        return Step(
            later.state,
            self.decisions + later.decisions,
            self.held + later.held,
            self.suppressions + later.suppressions,
            later.skipped,
        )


def on_propensity(state: ActionState, propensity: object, policy: Policy) -> Step:
    """Apply one propensity event (a decoded JSON object) of ``state.user_id``."""
    try:
        user_id, event = read_propensity(propensity)
    except MalformedPropensity as exc:
        return Step(state, skipped=f"malformed propensity: {exc}")
    if user_id != state.user_id:
        return Step(state, skipped=f"user_id {user_id!r} is not this state's {state.user_id!r}")
    # Everything due before this event happened first: the user was inactive until it.
    caught_up = on_time(state, event.ts - 1, policy)
    candidates = [r for r in policy.actions if event_trigger_matches(r, event)]
    decided = _decide(caught_up.state, candidates, event, event.ts, policy)
    return caught_up.then(replace(decided, state=_new_pending(decided.state, event, policy)))


def on_time(state: ActionState, known_until_ms: int, policy: Policy) -> Step:
    """Event time is known up to ``known_until_ms``: fire due inactivity rules, release held
    decisions whose quiet window has ended, drop expired cooldowns and past days."""
    step = _fire_inactivity(state, known_until_ms, policy)
    due = tuple(d for d in step.state.held if d.deliver_at <= known_until_ms)
    kept = tuple(d for d in step.state.held if d.deliver_at > known_until_ms)
    released = Step(replace(step.state, held=kept), decisions=due)
    step = step.then(released)
    return replace(step, state=_expire(step.state, known_until_ms, policy))


def next_due_ms(state: ActionState, policy: Policy) -> int | None:
    """The earliest event time at which ``on_time`` could change something; None: never."""
    times = [d.deliver_at for d in state.held]
    if state.pending is not None:
        times += _pending_due_times(state.pending, policy)
    for action, decided_at in state.last_decided:
        rule = policy.rule(action)
        times.append(decided_at + rule.cooldown_ms if rule is not None else decided_at)
    if state.day_count:
        times.append(next_day_start_ms(state.day, policy.timezone))
    return min(times) if times else None


def _pending_due_times(pending: PendingTrigger, policy: Policy) -> list[int]:
    due = (pending.event.ts + (r.inactive_ms or 0) for r in policy.inactivity_rules)
    return [t for t in due if t > pending.evaluated_until_ms]


def _fire_inactivity(state: ActionState, known_until_ms: int, policy: Policy) -> Step:
    pending = state.pending
    if pending is None or known_until_ms <= pending.evaluated_until_ms:
        return Step(state)
    event = pending.event
    step = Step(state)
    # Rules due at the same moment compete for one decision; different moments decide apart.
    for due in sorted(t for t in set(_pending_due_times(pending, policy)) if t <= known_until_ms):
        group = [
            r
            for r in policy.inactivity_rules
            if event.ts + (r.inactive_ms or 0) == due and conditions_hold(r, event)
        ]
        step = step.then(_decide(step.state, group, event, due, policy))
    left = PendingTrigger(event, known_until_ms)
    still_due = bool(_pending_due_times(left, policy))
    return replace(step, state=replace(step.state, pending=left if still_due else None))


def _new_pending(state: ActionState, event: ScoredEvent, policy: Policy) -> ActionState:
    """``event`` replaces the pending trigger; an older (out-of-order) event leaves it."""
    if state.pending is not None and state.pending.event.ts > event.ts:
        return state
    if any(conditions_hold(r, event) for r in policy.inactivity_rules):
        return replace(state, pending=PendingTrigger(event, event.ts))
    return replace(state, pending=None)


def _suppressed(
    state: ActionState, rule: ActionRule, decided_at: int, policy: Policy
) -> SuppressionReason | None:
    last = state.last_decided_at(rule.name)
    if rule.cooldown_ms and last is not None and decided_at < last + rule.cooldown_ms:
        return "cooldown"
    if policy.daily_cap:
        day = local_day(decided_at, policy.timezone)
        count = state.day_count if day <= state.day else 0
        if count >= policy.daily_cap:
            return "daily_cap"
    if (
        rule.quiet_hours is not None
        and rule.quiet_hours_mode == "drop"
        and rule.quiet_hours.contains(decided_at, policy.timezone)
    ):
        return "quiet_hours"
    return None


def _decide(
    state: ActionState,
    candidates: list[ActionRule],
    event: ScoredEvent,
    decided_at: int,
    policy: Policy,
) -> Step:
    """One decision among ``candidates`` (priority order) at ``decided_at``."""
    suppressions: list[Suppression] = []
    winner: Decision | None = None
    for rule in candidates:
        reason = "lower_priority" if winner else _suppressed(state, rule, decided_at, policy)
        if reason is not None:
            suppressions.append(Suppression(rule.name, reason, decided_at))
            continue
        winner = _decision(rule, state.user_id, event, decided_at, policy)
        state = state.with_decision(
            rule.name if rule.cooldown_ms else None,
            decided_at,
            local_day(decided_at, policy.timezone) if policy.daily_cap else None,
        )
    if winner is None:
        return Step(state, suppressions=tuple(suppressions))
    if winner.held:
        held = tuple(sorted((*state.held, winner), key=lambda d: d.deliver_at))
        return Step(replace(state, held=held), held=(winner,), suppressions=tuple(suppressions))
    return Step(state, decisions=(winner,), suppressions=tuple(suppressions))


def _decision(
    rule: ActionRule, user_id: str, event: ScoredEvent, decided_at: int, policy: Policy
) -> Decision:
    deliver_at = decided_at
    if rule.quiet_hours is not None and rule.quiet_hours.contains(decided_at, policy.timezone):
        deliver_at = rule.quiet_hours.end_after(decided_at, policy.timezone)
    return Decision(
        action=rule.name,
        action_id=action_id(event.event_id, rule.name),
        user_id=user_id,
        assignment=assignment(policy, user_id, rule.name),
        decided_at=decided_at,
        deliver_at=deliver_at,
        event_id=event.event_id,
        model_version=event.model_version,
        purchase=event.purchase,
        cart_abandon=event.cart_abandon,
        reason=reason_text(rule, event),
    )


def _expire(state: ActionState, known_until_ms: int, policy: Policy) -> ActionState:
    """Drop cooldowns that ended (or whose action left the policy) and a past day's count."""
    kept = []
    for action, decided_at in state.last_decided:
        rule = policy.rule(action)
        if rule is not None and decided_at + rule.cooldown_ms > known_until_ms:
            kept.append((action, decided_at))
    if state.day_count and known_until_ms >= next_day_start_ms(state.day, policy.timezone):
        state = replace(state, day=0, day_count=0)
    return replace(state, last_decided=tuple(kept))
