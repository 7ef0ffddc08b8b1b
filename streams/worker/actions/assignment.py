"""Who is in the control group, and the id of an action: pure hashes, the same in every
process and on every redelivery."""

import hashlib
from typing import Final, Literal

from streams.worker.actions.rules import Policy

Assignment = Literal["treatment", "control"]
HASH_HEX_DIGITS: Final = 15  # 60 bits: exact in a float64 division
ACTION_ID_HEX: Final = 32


def hash_fraction(text: str) -> float:
    """A uniform number in [0, 1) from the SHA-256 of ``text``."""
    digits = hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_HEX_DIGITS]
    return int(digits, 16) / 16**HASH_HEX_DIGITS


def assignment(policy: Policy, user_id: str, action: str) -> Assignment:
    """ "control" when the user is in the global control group, or in the action's own
    holdout; "treatment" otherwise."""
    if hash_fraction(f"{policy.salt}|{user_id}") < policy.control_share:
        return "control"
    rule = policy.rule(action)
    holdout = rule.holdout_share if rule is not None else 0.0
    if holdout and hash_fraction(f"{policy.salt}|{action}|{user_id}") < holdout:
        return "control"
    return "treatment"


def action_id(event_id: str, action: str) -> str:
    """The action's id: the same event and action always give the same id, so downstream
    senders de-duplicate redelivered decisions on it."""
    return hashlib.sha256(f"{event_id}|{action}".encode()).hexdigest()[:ACTION_ID_HEX]
